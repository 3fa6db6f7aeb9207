"""TFLM micro_speech's four test clips, and what a model says of them.

The clips (Apache-2.0, see golden_clips/LICENSE) are the ones TFLM's own micro_speech tests feed the
device; a model that calls "yes" something else is suspect whatever its test accuracy.
"""

import os
from pathlib import Path

import numpy as np

from microkws.audio import fit_to_length, read_audio, to_int16
from microkws.dataset.labels import label_role

GOLDEN_DIR = Path(__file__).resolve().parent / "golden_clips"
GOLDEN_CLIPS = {
    "yes_1000ms.wav": "yes",
    "no_1000ms.wav": "no",
    "silence_1000ms.wav": "silence",
    "noise_1000ms.wav": "silence",
}
"""TFLM micro_speech's test clips -> the label its tests expect."""


def golden_clips(feature_config, golden_dir=GOLDEN_DIR):
    """int16 clips [4, desired_samples] of GOLDEN_CLIPS, in its order."""
    return np.stack([
        to_int16(fit_to_length(read_audio(os.path.join(golden_dir, name), sample_rate=feature_config.sample_rate),
                               feature_config.desired_samples))
        for name in GOLDEN_CLIPS
    ])


def golden_results(outputs, labels):
    """{clip name: {"expected", "predicted", "ok", "output"}} of a model's outputs [4, labels] on the clips."""
    roles = [label_role(label) for label in labels]
    results = {}
    for name, output in zip(GOLDEN_CLIPS, outputs):
        wanted = label_role(GOLDEN_CLIPS[name])
        expected = labels[roles.index(wanted)] if wanted in roles else None
        predicted = labels[int(np.argmax(output))]
        results[name] = {
            "expected": expected,
            "predicted": predicted,
            "ok": None if expected is None else predicted == expected,
            "output": np.asarray(output).tolist(),
        }
    return results
