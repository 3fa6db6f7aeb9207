"""The label names every stage shares: silence, unknown, and what a model's output stands for."""

SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
BACKGROUND_NOISE_DIR = "_background_noise_"


def label_role(label):
    """The dataset label a model output stands for: "silence" and "_silence_" are `_silence_`,
    "unknown" and "_unknown_" are `_unknown_`, any other name is the (lower-case) word itself.

    TFLM's reference model names its outputs silence, unknown, yes, no; microkws runs name them
    _silence_, _unknown_, yes, no.
    """
    name = str(label).strip()
    plain = name.strip("_").lower()
    if plain == "silence":
        return SILENCE_LABEL
    if plain == "unknown":
        return UNKNOWN_LABEL
    return name.lower()


def keyword_indices(labels):
    """Indices of the outputs that are words to spot (not silence, not unknown)."""
    return [i for i, label in enumerate(labels) if label_role(label) not in (SILENCE_LABEL, UNKNOWN_LABEL)]
