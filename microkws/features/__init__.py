"""Features: audio clips in, [frames, bins] arrays out.

`compute_features(audio, config)` is what training and evaluation call; the
micro mode is TFLM's audio frontend, bit-exact with the device.
"""

from microkws.features.config import PREPROCESS_MODES, FeatureConfig

__all__ = ["FeatureConfig", "PREPROCESS_MODES"]
