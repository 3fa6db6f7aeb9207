"""A built Keras model as files and as a function: load, save atomically, run in batches."""

import os

import numpy as np

from microkws._tensorflow import keras
from microkws.errors import UserError

BATCH_SIZE = 512
"""Rows per call when running a model over many inputs: large enough to keep the cores busy, small
enough that a whole validation set never sits in memory as one tensor."""


def load_keras_model(path):
    """A saved microkws model (its custom layers are registered by importing microkws.models)."""
    import microkws.models.builders  # noqa: F401 - registers StaticReshape and the other custom layers

    try:
        return keras.saving.load_model(path, compile=False)
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: cannot load the Keras model ({error})") from None


def save_keras_model(path, model):
    """Save `model` to `path` (.keras) through a temporary file, so a kill never leaves half a model."""
    temporary = path + ".tmp.keras"
    try:
        model.save(temporary)
        os.replace(temporary, path)
    except OSError as error:
        raise UserError(f"{path}: cannot save the model ({error.strerror or error})") from None
    finally:  # a failed or interrupted save leaves no partial file
        if os.path.exists(temporary):
            os.remove(temporary)


def model_outputs(model, inputs, *, batch_size=BATCH_SIZE):
    """float32 outputs [n, outputs] of a Keras model for inputs [n, ...], in inference mode."""
    inputs = np.asarray(inputs)
    if not len(inputs):
        return np.zeros((0, int(model.outputs[0].shape[-1])), np.float32)
    return np.concatenate([np.asarray(model(inputs[i:i + batch_size], training=False), dtype=np.float32)
                           for i in range(0, len(inputs), batch_size)])


def ends_in_softmax(model):
    """Whether `model` outputs probabilities already (microkws runs save logits)."""
    last = model.layers[-1]
    if isinstance(last, keras.layers.Softmax):
        return True
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", "") == "softmax"
