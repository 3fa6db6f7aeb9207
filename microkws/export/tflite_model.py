"""Reading a .tflite flatbuffer: its ops, input and output tensors, and multiply-accumulates.

Parsed with the flatbuffer schema that the tflite-micro package ships, so no
interpreter (and no TensorFlow) is needed to say what a model file holds.
"""

import math
import struct
from dataclasses import dataclass

import numpy as np

from microkws.errors import UserError
from microkws.export.flatbuffer_check import check_model

TFLITE_IDENTIFIER = b"TFL3"
"""Bytes 4..8 of every TFLite flatbuffer."""


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor."""

    name: str
    shape: tuple
    dtype: str
    """numpy dtype name: "int8", "uint8", "float32", ..."""
    scale: float | None
    """Quantisation scale (per-tensor), None for a float tensor."""
    zero_point: int | None

    @property
    def size(self):
        return math.prod(self.shape)

    def to_dict(self):
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "scale": self.scale,
                "zero_point": self.zero_point}


@dataclass(frozen=True)
class ModelInfo:
    """What a TFLite model file holds (first subgraph)."""

    size_bytes: int
    ops: tuple
    """Builtin op names in execution order, e.g. ("RESHAPE", "CONV_2D", ...); custom ops as "CUSTOM:name"."""
    inputs: tuple
    """TensorInfo of each input."""
    outputs: tuple
    """TensorInfo of each output."""
    macs: int
    """Multiply-accumulates of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: output elements x kernel taps."""

    @property
    def op_counts(self):
        counts = {}
        for op in self.ops:
            counts[op] = counts.get(op, 0) + 1
        return counts

    @property
    def is_integer(self):
        """True when every input and output is int8 or uint8 (a model for TFLM's integer kernels)."""
        return all(t.dtype in ("int8", "uint8") for t in self.inputs + self.outputs)


def read_model(data, *, source="model"):
    """ModelInfo of flatbuffer bytes; UserError naming `source` if they are not a TFLite model."""
    schema = _schema()
    data = bytes(data)
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise UserError(f"{source}: not a TFLite model (no TFL3 flatbuffer identifier); pass a .tflite file")
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
        check_model(model, schema, size=len(data))
        subgraph = model.subgraphs[0]
        tensors = subgraph.tensors
        op_names = _builtin_names(schema)
        ops, macs = [], 0
        for op in subgraph.operators or []:
            code = model.operatorCodes[op.opcodeIndex]
            builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
            name = op_names.get(builtin, str(builtin))
            if name == "CUSTOM":
                name = f"CUSTOM:{_text(code.customCode)}"
            ops.append(name)
            macs += _op_macs(name, op, tensors)
        type_names = _type_names(schema)
        inputs = tuple(_tensor_info(tensors[i], type_names) for i in subgraph.inputs)
        outputs = tuple(_tensor_info(tensors[i], type_names) for i in subgraph.outputs)
    except (IndexError, TypeError, AttributeError, ValueError, struct.error, OverflowError) as error:
        raise UserError(f"{source}: damaged TFLite model ({error})") from None
    return ModelInfo(size_bytes=len(data), ops=tuple(ops), inputs=inputs, outputs=outputs, macs=macs)


def read_model_file(path):
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read ({error.strerror or error})") from None
    return data, read_model(data, source=path)


def _op_macs(name, op, tensors):
    if name not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
        return 0
    output = math.prod(_shape(tensors[op.outputs[0]]))
    weights = _shape(tensors[op.inputs[1]])
    if name == "CONV_2D":  # filter [out, kh, kw, in]: each output value reads kh * kw * in inputs
        return output * math.prod(weights[1:])
    if name == "DEPTHWISE_CONV_2D":  # filter [1, kh, kw, channels * multiplier]
        return output * weights[1] * weights[2]
    return output * weights[-1]  # FULLY_CONNECTED weights [units, inputs]


def _tensor_info(tensor, type_names):
    quantization = tensor.quantization
    scales = None if quantization is None or quantization.scale is None else np.asarray(quantization.scale)
    zero_points = None if quantization is None or quantization.zeroPoint is None else np.asarray(quantization.zeroPoint)
    quantized = scales is not None and len(scales) > 0
    return TensorInfo(
        name=_text(tensor.name),
        shape=tuple(int(d) for d in _shape(tensor)),
        dtype=type_names.get(tensor.type, str(tensor.type)).lower(),
        scale=float(np.float32(scales[0])) if quantized else None,
        zero_point=int(zero_points[0]) if quantized and zero_points is not None and len(zero_points) else None,
    )


def _shape(tensor):
    return [] if tensor.shape is None else [int(d) for d in tensor.shape]


def _text(value):
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _builtin_names(schema):
    return {value: name for name, value in vars(schema.BuiltinOperator).items() if not name.startswith("_")}


def _type_names(schema):
    names = {value: name for name, value in vars(schema.TensorType).items() if not name.startswith("_")}
    return {value: {"FLOAT32": "float32", "FLOAT16": "float16"}.get(name, name) for value, name in names.items()}


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated

    return schema_py_generated
