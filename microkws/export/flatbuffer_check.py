"""A structural check of a parsed TFLite model before any interpreter reads it.

TFLite Micro trusts the flatbuffer: an operator whose input index points past the tensor table, a
tensor whose buffer holds fewer bytes than its shape needs, or a per-channel scale list shorter than
the channels makes its C++ kernels read outside the file and kill the process (SIGSEGV) instead of
raising. The flatbuffers library checks offsets only as Python reads them; this module checks the
indices and sizes the kernels rely on. Written here because neither the flatbuffers package nor the
tflite-micro package exposes a verifier to Python.
"""

import math

import numpy as np

ITEM_BYTES = {"FLOAT32": 4, "FLOAT16": 2, "INT32": 4, "UINT8": 1, "INT64": 8, "BOOL": 1, "INT16": 2,
              "INT8": 1, "FLOAT64": 8, "UINT64": 8, "UINT32": 4, "UINT16": 2, "COMPLEX64": 8}
"""Bytes per element of the tensor types whose constant data has a fixed size."""
SCHEMA_VERSION = 3
"""The version field of every TFLite flatbuffer since 2018; interpreters refuse any other."""
MAX_ELEMENTS = 1 << 28
"""A tensor larger than this (256 M elements) is not a keyword model's: refused before any allocation."""


def check_model(model, schema, *, size):
    """Raise ValueError naming the first broken reference of `model` (a schema.ModelT parsed from `size`
    bytes); `read_model` turns it into the user's one-line error."""
    if model.version != SCHEMA_VERSION:
        raise ValueError(f"schema version {model.version}; TFLite models are version {SCHEMA_VERSION}")
    codes = model.operatorCodes or []
    builtin_codes = {value for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    for index, code in enumerate(codes):
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin not in builtin_codes:
            raise ValueError(f"operator code {index} names unknown builtin op {builtin}")
    if not model.subgraphs:
        raise ValueError("no subgraph")
    buffers = model.buffers or []
    for index, buffer in enumerate(buffers):
        if buffer.offset and buffer.offset + buffer.size > size:
            raise ValueError(f"buffer {index} lies past the end of the file")
    type_names = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    for number, subgraph in enumerate(model.subgraphs):
        tensors = subgraph.tensors or []
        for index, tensor in enumerate(tensors):
            _check_tensor(tensor, buffers, type_names, f"subgraph {number} tensor {index}")
        where = f"subgraph {number}"
        _check_indices(subgraph.inputs, len(tensors), f"{where} inputs", optional=False)
        _check_indices(subgraph.outputs, len(tensors), f"{where} outputs", optional=False)
        for position, op in enumerate(subgraph.operators or []):
            if not 0 <= op.opcodeIndex < len(codes):
                raise ValueError(f"{where} op {position} has operator code {op.opcodeIndex} of {len(codes)}")
            for field in ("inputs", "outputs", "intermediates"):
                _check_indices(getattr(op, field), len(tensors), f"{where} op {position} {field}",
                               optional=field == "inputs")


def _check_indices(indices, count, what, *, optional):
    """Every index in [0, count); -1 (an omitted optional input) too where `optional`."""
    for index in [] if indices is None else np.asarray(indices).tolist():
        if not (0 <= index < count or (optional and index == -1)):
            raise ValueError(f"{what} name tensor {index} of {count}")


def _check_tensor(tensor, buffers, type_names, what):
    shape = [] if tensor.shape is None else np.asarray(tensor.shape).tolist()
    if any(dim < 0 for dim in shape):
        raise ValueError(f"{what} has a negative dimension {shape}")
    elements = math.prod(shape)
    if elements > MAX_ELEMENTS:
        raise ValueError(f"{what} has {elements} elements, more than a keyword model's")
    type_name = type_names.get(tensor.type)
    if type_name is None:
        raise ValueError(f"{what} has unknown type {tensor.type}")
    if not 0 <= tensor.buffer < max(len(buffers), 1):
        raise ValueError(f"{what} names buffer {tensor.buffer} of {len(buffers)}")
    data = buffers[tensor.buffer].data if buffers else None
    stored = len(data) if data is not None else (buffers[tensor.buffer].size if buffers else 0)
    if stored and type_name in ITEM_BYTES and stored != elements * ITEM_BYTES[type_name]:
        raise ValueError(f"{what} needs {elements * ITEM_BYTES[type_name]} bytes of {type_name.lower()} "
                         f"data, its buffer holds {stored}")
    _check_quantization(tensor.quantization, shape, what)


def _check_quantization(quantization, shape, what):
    if quantization is None or quantization.scale is None or not len(quantization.scale):
        return
    scales = np.asarray(quantization.scale, dtype=np.float64)
    zero_points = None if quantization.zeroPoint is None else np.asarray(quantization.zeroPoint)
    if not np.all(np.isfinite(scales)) or np.any(scales <= 0):
        raise ValueError(f"{what} has a quantisation scale that is not a positive number")
    if zero_points is not None and len(zero_points) != len(scales):
        raise ValueError(f"{what} has {len(scales)} quantisation scales but {len(zero_points)} zero points")
    if len(scales) > 1:
        axis = quantization.quantizedDimension
        if not 0 <= axis < len(shape) or shape[axis] != len(scales):
            raise ValueError(f"{what} has {len(scales)} per-channel scales for dimension {axis} of shape {shape}")
