"""TensorFlow Lite's own interpreter, for reference outputs and the float model.

`tf.lite.Interpreter` is deprecated in favour of the ai_edge_litert package
(it still ships with TF 2.21), and its reference kernels are selected with
the experimental `OpResolverType.BUILTIN_REF`: the plain C++ kernels that
TFLM's kernels were ported from, with no optimised paths. Both are kept
here, behind a few functions, so a TF upgrade that moves them is a change in
one file; tests/test_export.py fails if either disappears.

`optimized_interpreter` runs integer models on tf.lite's optimised kernels
without the XNNPack delegate: 10-15x faster than TFLM's reference kernels
on these models, and near them (on real stream windows, 0.1-9 % of windows
differ, by 1-4 steps of 255; with XNNPack, by up to 10). It is for work
that runs a model over hours of audio (the streaming calibration), where
that speed buys a longer, better-resolved stream.
"""

import warnings

import numpy as np

from microkws.errors import UserError, first_line


def reference_interpreter(model_bytes, *, source="model"):
    """A tf.lite interpreter running `model_bytes` on TFLite's reference kernels; a model it refuses is a
    UserError naming `source`."""
    from microkws._tensorflow import tf

    return _interpreter(model_bytes, tf.lite.experimental.OpResolverType.BUILTIN_REF, source)


def optimized_interpreter(model_bytes, *, source="model"):
    """A tf.lite interpreter on tf.lite's optimised kernels without the XNNPack delegate (see the module
    docstring for how near TFLM's kernels they are)."""
    from microkws._tensorflow import tf

    return _interpreter(model_bytes, tf.lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES, source)


def float_interpreter(model_bytes, *, source="model"):
    """A tf.lite interpreter with the default (optimised) kernels, for float models."""
    from microkws._tensorflow import tf

    return _interpreter(model_bytes, tf.lite.experimental.OpResolverType.AUTO, source)


def run_interpreter(interpreter, inputs):
    """Outputs of a one-input, one-output, batch-1 tf.lite interpreter for each row of `inputs`."""
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    shape = input_detail["shape"]
    outputs = []
    for row in np.asarray(inputs):
        interpreter.set_tensor(input_detail["index"], row.reshape(shape).astype(input_detail["dtype"]))
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_detail["index"]).reshape(-1).copy())
    return np.stack(outputs) if outputs else np.zeros((0, int(np.prod(output_detail["shape"]))))


def _interpreter(model_bytes, resolver, source):
    from microkws._tensorflow import tf

    try:
        with warnings.catch_warnings():
            # "tf.lite.Interpreter is deprecated": known, and handled here (see the module docstring).
            warnings.simplefilter("ignore", UserWarning)
            interpreter = tf.lite.Interpreter(model_content=bytes(model_bytes),
                                              experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as error:  # what the C++ wrapper raises for a model it refuses
        raise UserError(f"{source}: TFLite's interpreter cannot run it ({first_line(error)})") from None
    return interpreter
