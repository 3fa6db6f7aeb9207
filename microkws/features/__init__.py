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


def compute_features(clips, config):
    """Features of int16 clips [n, samples] (or one clip [samples]) as float32 [..., frames, bins].

    micro: the frontend's uint16 output times 10/256 (0-26), as the original trained.
    mfcc / average: the original's TensorFlow spectrogram modes on clips / 32768.
    """
    clips = np.asarray(clips)
    if clips.dtype != np.int16:
        raise TypeError(f"compute_features expects int16 clips, got {clips.dtype}")
    if config.preprocess == "micro":
        from microkws.features.micro import micro_features, to_training_scale

        return to_training_scale(micro_features(clips, config))
    from microkws.features.spectral import average_features, mfcc_features

    audio = clips.astype(np.float32) / 32768
    if config.preprocess == "mfcc":
        return mfcc_features(audio, config)
    return average_features(audio, config)
