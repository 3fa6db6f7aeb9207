"""Dropping what a microcontroller never uses from a .tflite flatbuffer: names and a copying RESHAPE.

The converter names every tensor after the TF ops fused into it, e.g.
"tiny_conv_probabilities_batch1_1/tiny_conv_probabilities_1/conv_1/Relu;
...conv_1/BiasAdd;...conv_1/convolution;...conv_1/Squeeze", and adds a
signature def: about 1.4 KB of tiny_conv's 20 KB, in flash. TFLM addresses
tensors by index, so `slim_model` clears those names (keeping "features" and
"probabilities" on the input and output for people reading the file), the
subgraph name and the signature defs, the same strings TF's own
`flatbuffer_utils.strip_strings` removes. Weights, ops, quantisation and
metadata are untouched.

It also folds a RESHAPE that only flattens the input of a FULLY_CONNECTED
(Keras' Flatten before Dense) into that FULLY_CONNECTED, which flattens its
input itself (keep_num_dims false): TFLM's RESHAPE copies into a second
buffer of the same size, so for tiny_conv the fold saves 4,000 bytes of
arena (9,800 -> 5,800) and a hundred of flash. TOCO did the same: TFLM's
micro_speech_quantized.tflite feeds the [1, 25, 20, 8] activations straight
to its FULLY_CONNECTED. Both ops carry the same quantisation, so the
outputs do not change (tests/test_export.py checks TFLM against TFLite's
reference kernels on the folded model).

The flatbuffer is rebuilt with the flatbuffers package and the schema that
tflite-micro ships. Its generated code packs buffer data without the
schema's 16-byte `force_align`, which TFLM relies on for in-place reads of
int32 biases on cores that fault on unaligned loads, so buffers are packed
here with that alignment.
"""

import flatbuffers
import numpy as np

from microkws.export.tflite_model import TFLITE_IDENTIFIER

BUFFER_ALIGNMENT = 16


def slim_model(model_bytes, *, input_name="features", output_name="probabilities"):
    """`model_bytes` without tensor names (but the input's and output's), subgraph names, signature defs
    and flattening RESHAPEs in front of FULLY_CONNECTED ops."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(bytes(model_bytes), 0))
    for subgraph in model.subgraphs:
        _fold_flatten(model, subgraph, schema)
    for subgraph in model.subgraphs:
        subgraph.name = None
        for tensor in subgraph.tensors:
            tensor.name = None
    main = model.subgraphs[0]
    for indices, name in ((main.inputs, input_name), (main.outputs, output_name)):
        for k, index in enumerate(indices):
            main.tensors[index].name = (name if len(indices) == 1 else f"{name}_{k}").encode()
    model.signatureDefs = None
    model.buffers = [_aligned(buffer, schema) for buffer in model.buffers]
    builder = flatbuffers.Builder(len(model_bytes) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _fold_flatten(model, subgraph, schema):
    """Remove each RESHAPE whose only consumer is a FULLY_CONNECTED reading it as its input, with no
    keep_num_dims, and whose output is [batch, everything else]; the FULLY_CONNECTED reads the RESHAPE's input."""
    operators = list(subgraph.operators or [])
    for op in list(operators):
        if _op_name(model, op, schema) != "RESHAPE":
            continue
        source, flat = op.inputs[0], op.outputs[0]
        consumers = [other for other in operators if flat in list(other.inputs)]
        if len(consumers) != 1 or flat in list(subgraph.outputs):
            continue
        consumer = consumers[0]
        if _op_name(model, consumer, schema) != "FULLY_CONNECTED" or list(consumer.inputs).index(flat) != 0:
            continue
        if consumer.builtinOptions is not None and getattr(consumer.builtinOptions, "keepNumDims", False):
            continue
        source_shape, flat_shape = list(subgraph.tensors[source].shape), list(subgraph.tensors[flat].shape)
        if len(flat_shape) != 2 or source_shape[:1] != flat_shape[:1] or int(np.prod(source_shape)) != int(
                np.prod(flat_shape)):
            continue
        inputs = list(consumer.inputs)
        inputs[0] = source
        consumer.inputs = inputs
        operators.remove(op)
    subgraph.operators = operators
    _drop_unused_tensors(subgraph)


def _drop_unused_tensors(subgraph):
    used = set(subgraph.inputs) | set(subgraph.outputs)
    for op in subgraph.operators:
        used.update(i for i in op.inputs if i >= 0)
        used.update(i for i in op.outputs if i >= 0)
        used.update(i for i in (op.intermediates if op.intermediates is not None else []) if i >= 0)
    keep = sorted(used)
    if len(keep) == len(subgraph.tensors):
        return
    new_index = {old: new for new, old in enumerate(keep)}

    def remap(indices):
        return [new_index[i] if i >= 0 else i for i in indices]

    subgraph.tensors = [subgraph.tensors[i] for i in keep]
    subgraph.inputs, subgraph.outputs = remap(subgraph.inputs), remap(subgraph.outputs)
    for op in subgraph.operators:
        op.inputs, op.outputs = remap(op.inputs), remap(op.outputs)
        if op.intermediates is not None:
            op.intermediates = remap(op.intermediates)


def _op_name(model, op, schema):
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    return next((name for name, value in vars(schema.BuiltinOperator).items() if value == builtin), None)


def buffer_alignments(model_bytes):
    """Offset modulo 16 of every non-empty buffer's data in `model_bytes` (all 0 for slim_model's output)."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = schema.Model.GetRootAs(bytes(model_bytes), 0)
    result = []
    for i in range(model.BuffersLength()):
        buffer = model.Buffers(i)
        if buffer.DataLength():
            result.append(buffer._tab.Vector(buffer._tab.Offset(4)) % BUFFER_ALIGNMENT)
    return result


def _aligned(buffer, schema):
    aligned = _aligned_buffer_class(schema)()
    aligned.data, aligned.offset, aligned.size = buffer.data, buffer.offset, buffer.size
    return aligned


_CLASSES = {}


def _aligned_buffer_class(schema):
    if schema not in _CLASSES:

        class AlignedBufferT(schema.BufferT):
            """BufferT whose data vector starts on a 16-byte boundary, as the schema's force_align asks."""

            def Pack(self, builder):  # noqa: N802 - the generated code's name
                data = None
                if self.data is not None and len(self.data):
                    raw = np.asarray(self.data, dtype=np.uint8).tobytes()
                    # What Builder.CreateByteVector does, with the schema's alignment.
                    builder.StartVector(1, len(raw), BUFFER_ALIGNMENT)
                    builder.head = builder.head - len(raw)
                    builder.Bytes[builder.head:builder.head + len(raw)] = raw
                    data = builder.EndVector()
                schema.BufferStart(builder)
                if data is not None:
                    schema.BufferAddData(builder, data)
                schema.BufferAddOffset(builder, self.offset)
                schema.BufferAddSize(builder, self.size)
                return schema.BufferEnd(builder)

        _CLASSES[schema] = AlignedBufferT
    return _CLASSES[schema]
