"""Features: audio clips in, [frames, bins] arrays out.

`compute_features(clips, config)` is what training and evaluation call: int16
clips [n, samples] in, float32 [n, frames, bins] out, in the scale the models
train on. The micro mode is TFLM's audio frontend, bit-exact with the device.
"""

import numpy as np

from microkws.features.config import PREPROCESS_MODES, FeatureConfig
from microkws.features.micro import MicroFrontend, micro_features, to_int8, to_training_scale

__all__ = [
    "FeatureConfig",
    "PREPROCESS_MODES",
    "compute_features",
    "micro_features",
    "MicroFrontend",
    "to_int8",
    "to_training_scale",
]


def compute_features(clips, config, *, device_grid=False, skip_frames=0, out=None):
    """Features of int16 clips [n, samples] (or one clip [samples]) as float32 [..., frames, bins].

    micro: the frontend's uint16 output times 10/256 (0-26), as the original trained; with
    `device_grid`, snapped to the device's int8 input grid (micro.snap_to_device_grid).
    mfcc / average: the original's TensorFlow spectrogram modes on clips / 32768.
    `skip_frames`: leave out each clip's first frames (a warmed-up frontend's lead). `out`: a float32
    array of the result's shape to write into (a batch producer's share of a larger array).
    """
    clips = np.asarray(clips)
    if clips.dtype != np.int16:
        raise TypeError(f"compute_features expects int16 clips, got {clips.dtype}")
    if config.preprocess == "micro":
        from microkws.features.micro import micro_features, training_values

        return training_values(micro_features(clips, config)[..., skip_frames:, :], device_grid=device_grid, out=out)
    from microkws.features.micro import snap_to_device_grid
    from microkws.features.spectral import average_features, mfcc_features

    audio = clips.astype(np.float32) / 32768
    features = (mfcc_features if config.preprocess == "mfcc" else average_features)(audio, config)[..., skip_frames:, :]
    features = snap_to_device_grid(features) if device_grid else features
    if out is None:
        return features
    out[...] = features
    return out
