"""Every flag group of the CLI, in one place, with its defaults read from the settings dataclasses.

The original speech_commands scripts use `--wanted_words`; modern tools use `--wanted-words`. Every
flag is accepted both ways so the tutorial's commands run unchanged. A flag that fills a settings field
takes its default from that field (`default_of`), so `--help` cannot disagree with the Python API, and
`settings_from_args` builds the settings from the parsed flags, never field by field. Numbers are
parsed once, here: NaN and infinity are one-line errors everywhere. A settings field's range is
checked by its dataclass (one place, for the API too); flags without one get their range here.
"""

import argparse
import dataclasses
import math
import os

from microkws.dataset import AugmentConfig, DataConfig
from microkws.features import PREPROCESS_MODES, FeatureConfig
from microkws.models import ARCHITECTURES
from microkws.train.config import CHECKPOINT_METRICS, OPTIMIZERS, SCHEDULES, WEIGHT_SCALES, TrainConfig
from microkws.train.rundir import DETECTION_FILE

UNSET = None
"""The default of a flag whose value comes from a base config (train --config): "not given"."""


def add_flag(parser, name, *aliases, **kwargs):
    """Add `--name` with its underscore and dash spellings, plus extra aliases."""
    bare = name.lstrip("-")
    spellings = [f"--{bare.replace('_', '-')}", f"--{bare.replace('-', '_')}"]
    spellings += [a for a in aliases]
    unique = list(dict.fromkeys(spellings))
    kwargs.setdefault("dest", bare.replace("-", "_"))
    return parser.add_argument(*unique, **kwargs)


def default_of(cls, name):
    """The default of settings field `name` of the dataclass `cls`."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def add_setting(group, cls, name, *aliases, help, defaults=True, **kwargs):
    """A flag for field `name` of `cls`: its default is the field's (or UNSET without `defaults`, for a
    value that may come from elsewhere), and `--help` says the field's default."""
    default = default_of(cls, name)
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    suffix = "" if default is None else f" (default: {shown})"
    return add_flag(group, f"--{name}", *aliases, default=default if defaults else UNSET,
                    help=help + suffix, **kwargs)


def settings_from_args(cls, args, base=None, *, names=None, **extra):
    """`cls` built from the parsed flags named like its fields (only `names`, when given: two settings
    classes may share a field name); fields whose flag is UNSET (or absent) keep `base`'s value (or
    the default)."""
    names = names or [f.name for f in dataclasses.fields(cls)]
    values = {name: getattr(args, name) for name in names if getattr(args, name, UNSET) is not UNSET}
    values.update(extra)
    return dataclasses.replace(base, **values) if base is not None else cls(**values)


# --- values -------------------------------------------------------------------------------------------------------


def number(low=None, high=None, *, above=None, whole=False):
    """An argparse type: a finite number (an int with `whole`) in [low, high], or above `above`."""

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r}: give a finite number")
        if whole:
            if not value.is_integer():
                raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
            value = int(value)
        if (low is not None and value < low) or (high is not None and value > high):
            span = f"from {low}" if high is None else f"up to {high}" if low is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: give a number {span}")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"{text!r}: give a number above {above}")
        return value

    return parse


def number_list(*, whole=False):
    """An argparse type: comma-separated numbers, each checked as `number` checks one."""
    one = number(whole=whole)

    def parse(text):
        items = comma_list(text)
        if not items:
            raise argparse.ArgumentTypeError("give at least one number, e.g. 15000,3000")
        return tuple(one(item) for item in items)

    return parse


def decimal_count(text):
    """A whole count: 2000000, 2e6, 2M or 500K (K and M are 1,000 and 1,000,000, as multiply-accumulates
    are counted)."""
    units = {"K": 1000, "M": 1000 * 1000}
    stripped = text.strip().upper()
    try:
        value = float(stripped[:-1]) * units[stripped[-1]] if stripped[-1:] in units else float(stripped)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a count (e.g. 2000000, 2M, 500K)") from None
    if not math.isfinite(value) or value <= 0 or not value.is_integer():
        raise argparse.ArgumentTypeError(f"{text!r}: give a positive whole count (e.g. 2M)")
    return int(value)


def byte_count(text):
    """A byte count: 20000, 64K or 1M (K and M are 1024 and 1024**2)."""
    units = {"K": 1024, "M": 1024 * 1024}
    text = text.strip().upper().removesuffix("B")
    try:
        scaled = float(text[:-1]) * units[text[-1]] if text and text[-1] in units else int(text)
        value = int(scaled)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a byte count (e.g. 20000, 64K, 1M)") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: a budget must be positive")
    return value


def str_to_bool(text):
    """Parse 0/1/true/false/yes/no as their meaning (the original took "0" as true)."""
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected 0/1/true/false, got {text!r}")


def comma_list(text):
    """Parse "up,down" into ("up", "down"), ignoring blanks."""
    return tuple(item.strip() for item in str(text).split(",") if item.strip())


def add_json_argument(parser, what):
    """--json [FILE]: one meaning in every command: the report as JSON, into FILE or (alone) printed."""
    add_flag(parser, "--json", nargs="?", const="-", default=None, metavar="FILE",
             help=f"write {what} as JSON to FILE; --json alone prints it instead of the table")


def check_output_folder(target, flag):
    """A one-line error now, not after minutes of scoring, when the folder of an output FILE given to
    `flag` cannot take it ("-", stdout, and None, no output, pass)."""
    from microkws.files import check_writable, existing_folder_of

    if target not in (None, "-"):
        check_writable(existing_folder_of(target), what=f"write {flag} {target}")


def write_json_output(target, data):
    """Print `data` as JSON (target "-") or write it to the file `target`."""
    import json

    from microkws.files import write_json

    if target == "-":
        print(json.dumps(data, indent=1))
    else:
        write_json(target, data)


# --- settings groups ----------------------------------------------------------------------------------------------


DATA_SETTINGS = ("wanted_words", "silence_percentage", "unknown_percentage", "validation_percentage",
                 "testing_percentage", "split", "strict")
"""The DataConfig fields the data flags set."""


def add_data_arguments(parser, *, defaults=True):
    """The original train.py's data flags, shared by every command that reads a data folder."""
    group = parser.add_argument_group("data")
    add_flag(group, "--data_dir", metavar="DIR",
             help="folder in Speech Commands layout (<word>/<clip>.wav, _background_noise_/); default: where "
                  "`microkws download` puts Speech Commands v0.02")
    add_setting(group, DataConfig, "wanted_words", type=comma_list, metavar="W1,W2", defaults=defaults,
                help="words to recognise, comma-separated")
    add_setting(group, DataConfig, "silence_percentage", type=number(), metavar="PCT", defaults=defaults,
                help="silence examples as a percentage of the wanted-word clips")
    add_setting(group, DataConfig, "unknown_percentage", type=number(), metavar="PCT", defaults=defaults,
                help="unknown-word examples as a percentage of the wanted-word clips")
    add_setting(group, DataConfig, "validation_percentage", type=number(), metavar="PCT", defaults=defaults,
                help="share of speakers for validation with the file-name split")
    add_setting(group, DataConfig, "testing_percentage", type=number(), metavar="PCT", defaults=defaults,
                help="share of speakers for testing with the file-name split")
    add_setting(group, DataConfig, "split", choices=("auto", "lists", "hash"), defaults=defaults,
                help="partitions from the folder's validation_list.txt/testing_list.txt (lists), the original "
                     "SHA-1 file-name split (hash), or lists when present (auto)")
    add_flag(group, "--strict", action="store_const", const=True, default=False if defaults else UNSET,
             help="fail on an unreadable audio file instead of skipping it")
    return group


def data_config_from_args(args, base=None):
    """The DataConfig of the data flags; without --data_dir, `base`'s folder or the download location."""
    data_dir = args.data_dir or (base.data_dir if base is not None else None)
    if data_dir is None:
        from microkws.download import DEFAULT_VERSION, SPEECH_COMMANDS, default_data_root

        data_dir = os.path.join(default_data_root(), SPEECH_COMMANDS[DEFAULT_VERSION].folder)
    # DataConfig.seed (the unknown-word draw) has no flag: --seed is the training seed.
    return settings_from_args(DataConfig, args, base, names=DATA_SETTINGS, data_dir=data_dir)


def add_feature_arguments(parser, *, defaults=True):
    group = parser.add_argument_group("features")
    add_setting(group, FeatureConfig, "preprocess", choices=PREPROCESS_MODES, defaults=defaults,
                help="micro: TFLM's audio frontend, as on the device; mfcc or average: the original's others")
    add_setting(group, FeatureConfig, "sample_rate", type=number(whole=True), defaults=defaults,
                help="samples per second")
    add_setting(group, FeatureConfig, "clip_duration_ms", type=number(whole=True), defaults=defaults,
                help="length of one example")
    add_setting(group, FeatureConfig, "window_size_ms", type=number(), defaults=defaults,
                help="analysis window")
    add_setting(group, FeatureConfig, "window_stride_ms", "--window_stride", "--window-stride",
                type=number(), defaults=defaults, help="hop between windows")
    add_setting(group, FeatureConfig, "feature_bin_count", type=number(whole=True), defaults=defaults,
                help="frontend channels, MFCC coefficients or pooled bins")
    return group


def feature_config_from_args(args, base=None):
    return settings_from_args(FeatureConfig, args, base)


def add_augment_arguments(parser, *, defaults=True):
    group = parser.add_argument_group("augmentation (training clips only)")
    add_setting(group, AugmentConfig, "time_shift_ms", type=number(), metavar="MS", defaults=defaults,
                help="random time shift range")
    add_setting(group, AugmentConfig, "background_volume", type=number(), metavar="V", defaults=defaults,
                help="how loud the background noise is, at most")
    add_setting(group, AugmentConfig, "background_frequency", type=number(), metavar="P", defaults=defaults,
                help="share of training clips with background noise")
    add_setting(group, AugmentConfig, "gain_db", type=number(), metavar="DB", defaults=defaults,
                help="random gain of each word clip, up to +-DB decibels")
    add_setting(group, AugmentConfig, "background_snr_db", type=number_list(), metavar="LOW,HIGH",
                defaults=defaults, help="mix noise at a signal-to-noise ratio drawn in [LOW, HIGH] dB instead of "
                "at --background_volume")
    add_setting(group, AugmentConfig, "time_masks", type=number(whole=True), metavar="N", defaults=defaults,
                help="SpecAugment: bands of frames blanked per example")
    add_setting(group, AugmentConfig, "time_mask_frames", type=number(whole=True), metavar="F", defaults=defaults,
                help="SpecAugment: widest time band, in frames")
    add_setting(group, AugmentConfig, "frequency_masks", type=number(whole=True), metavar="N", defaults=defaults,
                help="SpecAugment: bands of channels blanked per example")
    add_setting(group, AugmentConfig, "frequency_mask_bins", type=number(whole=True), metavar="B",
                defaults=defaults, help="SpecAugment: widest frequency band, in channels")
    add_setting(group, AugmentConfig, "frontend_warmup_ms", type=number(), metavar="MS", defaults=defaults,
                help="micro features: the frontend first hears MS of each example's background noise, as a "
                     "listening device has (0: a fresh frontend per clip, as the original)")
    add_setting(group, AugmentConfig, "frequency_warp", type=number(), metavar="W", defaults=defaults,
                help="micro features: stretch each example's spectrum by a factor in [1-W, 1+W], as another "
                     "voice's formants sit (0: off)")
    add_setting(group, AugmentConfig, "speed_perturbation", type=number(), metavar="S", defaults=defaults,
                help="play each word clip at a random speed in [1-S, 1+S], pitch and tempo together (0: off)")
    add_setting(group, AugmentConfig, "overdrive_frequency", type=number(), metavar="P", defaults=defaults,
                help="share of word clips amplified past full scale and clipped, as a microphone set too hot "
                     "records them (0: off)")
    add_setting(group, AugmentConfig, "overdrive_db", type=number(), metavar="DB", defaults=defaults,
                help="how far past full scale an overdriven clip's peak goes, at most")
    return group


def add_training_arguments(parser, *, defaults=True):
    group = parser.add_argument_group("training")
    add_setting(group, TrainConfig, "model_architecture", metavar="NAME", defaults=defaults,
                help=f"the architecture: {', '.join(ARCHITECTURES)}")
    add_setting(group, TrainConfig, "model_config", metavar="JSON", type=_json_object, defaults=defaults,
                help="the architecture's settings, a JSON object or file, e.g. '{\"filters\": 32}' for ds_cnn "
                     "(default: the architecture's)")
    add_setting(group, TrainConfig, "how_many_training_steps", type=number_list(whole=True),
                metavar="N1,N2", defaults=defaults, help="steps of each learning-rate phase")
    add_setting(group, TrainConfig, "learning_rate", type=number_list(), metavar="R1,R2", defaults=defaults,
                help="learning rate of each phase")
    add_setting(group, TrainConfig, "batch_size", type=number(whole=True), defaults=defaults,
                help="examples per step")
    add_setting(group, TrainConfig, "eval_step_interval", type=number(whole=True), metavar="N", defaults=defaults,
                help="validate every N steps")
    add_setting(group, TrainConfig, "save_step_interval", type=number(whole=True), metavar="N", defaults=defaults,
                help="checkpoint every N steps")
    add_setting(group, TrainConfig, "optimizer", choices=OPTIMIZERS, defaults=defaults, help="the optimizer")
    add_setting(group, TrainConfig, "weight_decay", type=number(), metavar="W", defaults=defaults,
                help="adamw's decoupled weight decay")
    add_setting(group, TrainConfig, "learning_rate_schedule", choices=SCHEDULES, defaults=defaults,
                help="phases: each phase's rate held (the original); cosine: warm-up, then cosine decay to 0")
    add_setting(group, TrainConfig, "warmup_steps", type=number(whole=True), metavar="N", defaults=defaults,
                help="linear warm-up steps of the cosine schedule")
    add_setting(group, TrainConfig, "label_smoothing", type=number(), metavar="S", defaults=defaults,
                help="share of each target spread over the labels")
    add_setting(group, TrainConfig, "checkpoint_metric", choices=CHECKPOINT_METRICS, defaults=defaults,
                help="validation score that picks the best checkpoint: keyword_recall_at_5 (or _at_1) is "
                     "keyword recall when 5%% (1%%) of other words fire; balanced_accuracy weighs a missed "
                     "keyword and a false accept alike; accuracy counts every clip alike")
    add_setting(group, TrainConfig, "keep_best", type=str_to_bool, metavar="0|1", defaults=defaults,
                help="1: keep the checkpoint with the best validation score; 0: keep the last step's weights")
    add_setting(group, TrainConfig, "dropout_rate", type=number(), metavar="R", defaults=defaults,
                help="dropout while training (default: the architecture's, 0.5 for the original models)")
    add_setting(group, TrainConfig, "quantize", type=str_to_bool, metavar="0|1", defaults=defaults,
                help="train for an 8-bit model")
    add_setting(group, TrainConfig, "weight_scales", choices=WEIGHT_SCALES, defaults=defaults,
                help="int8 weight scales of the exported model: per_channel, or per_tensor for a smaller "
                     "flatbuffer")
    add_setting(group, TrainConfig, "check_nans", type=str_to_bool, metavar="0|1", defaults=defaults,
                help="accepted for the original's commands; a diverged loss always stops the run")
    add_setting(group, TrainConfig, "fresh_unknowns", type=str_to_bool, metavar="0|1", defaults=defaults,
                help="draw unknown examples from all other words on every step; 0 reuses the original's single "
                     "fixed draw")
    add_setting(group, TrainConfig, "balanced_batches", type=str_to_bool, metavar="0|1", defaults=defaults,
                help="draw every label equally often in training batches (1), or clips uniformly as the original")
    add_setting(group, TrainConfig, "seed", type=number(whole=True), defaults=defaults,
                help="random seed of the run")
    return group


def _json_object(text):
    """A JSON object given inline or as a file's path."""
    import json

    try:
        if os.path.isfile(text):
            with open(text, encoding="utf-8") as file:
                text = file.read()
        value = json.loads(text)
    except (OSError, ValueError) as error:
        raise argparse.ArgumentTypeError(f"not a JSON object or a file holding one ({error})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"filters\": 32}}', got {text!r}")
    return value


def add_model_arguments(parser, *, default="keras"):
    """MODEL plus the flags that say how to load it (evaluate, label, stream-eval and listen)."""
    from microkws.inference import RUNTIMES

    parser.add_argument("model", metavar="MODEL", help="a run directory, a .keras or a .tflite model")
    group = parser.add_argument_group("model")
    if default == "keras":
        add_flag(group, "--tflite", dest="prefer", action="store_const", const="tflite", default="keras",
                 help="in a run directory, use model.tflite (int8)")
    else:
        add_flag(group, "--keras", dest="prefer", action="store_const", const="keras", default="tflite",
                 help="in a run directory, use model.keras (float)")
    add_flag(group, "--runtime", choices=RUNTIMES, default="tflm",
             help="run a .tflite on TFLite Micro's kernels, as the device (tflm, default), tf.lite's reference "
                  "kernels (tflite) or tf.lite's optimised kernels (tflite_optimized: 10-15x faster, within a few "
                  "steps of 255 of the device's)")
    add_labels_argument(group)
    add_feature_arguments(parser).description = "for a model outside a run directory (default: micro_speech's)"


def add_labels_argument(group):
    """--labels: one meaning in every command: the model's output names, in order."""
    add_flag(group, "--labels", metavar="L1,L2,...|FILE",
             help="the outputs' names in order, comma-separated or a labels file, for a model outside a run "
                  "directory (silence/unknown name the _silence_/_unknown_ outputs)")


def model_from_args(args):
    from microkws.inference import load_model, read_labels

    return load_model(args.model, labels=read_labels(args.labels), feature_config=feature_config_from_args(args),
                      runtime=args.runtime, prefer=args.prefer)


def add_recognition_arguments(parser):
    """RecognizeCommands' settings (stream-eval and listen). A flag not given takes the run's calibrated
    setting (detection.json) or the device's default: see `detection_from_args`."""
    from microkws.streaming.recognize import DetectionSettings

    def shown(name):
        return f"default: the run's {DETECTION_FILE} when MODEL is a calibrated run, else " \
               f"{default_of(DetectionSettings, name):g}"

    group = parser.add_argument_group("recognition (TFLM's RecognizeCommands)")
    add_flag(group, "--clip_stride_ms", type=number(above=0), default=20, metavar="MS",
             help="run the model every MS ms, a multiple of the feature stride (default: %(default)s)")
    add_flag(group, "--average_window_duration_ms", "--average_window_ms", "--average-window-ms",
             type=number(1, 60_000, whole=True), default=UNSET, metavar="MS",
             help=f"average the scores of the last MS ms ({shown('average_window_duration_ms')})")
    add_flag(group, "--detection_threshold", type=number(0, 1), default=UNSET, metavar="P",
             help="report a command when its averaged probability exceeds P (" + shown("detection_threshold")
                  + ", the device's 200 of 256; the original streaming test used 0.7)")
    add_flag(group, "--suppression_ms", type=number(0, 60_000, whole=True), default=UNSET, metavar="MS",
             help=f"after a command, ignore the same label for MS ms ({shown('suppression_ms')})")
    add_flag(group, "--minimum_count", type=number(0, 10_000, whole=True), default=UNSET, metavar="N",
             help=f"results needed in the averaging window before any command ({shown('minimum_count')})")
    return group


def detection_from_args(args, model):
    """(DetectionSettings, a line saying where each came from) of the recognition flags: a flag given wins;
    the others come from the run's detection.json when `model` (a KeywordModel) belongs to a calibrated
    run, else from the device's defaults (DetectionSettings())."""
    from microkws.streaming.calibrate import read_detection
    from microkws.streaming.recognize import DetectionSettings

    found = read_detection(model.run_dir)
    base = found[0] if found else DetectionSettings()
    settings = settings_from_args(DetectionSettings, args, base)
    origin = {}
    for field in dataclasses.fields(DetectionSettings):
        given = getattr(args, field.name, UNSET) is not UNSET
        origin[field.name] = f"--{field.name}" if given else found[2] if found else "default"
    names = {"detection_threshold": "threshold {:g}", "average_window_duration_ms": "window {} ms",
             "minimum_count": "min count {}", "suppression_ms": "suppression {} ms"}
    line = "recognition settings: " + ", ".join(f"{text.format(getattr(settings, name))} ({origin[name]})"
                                       for name, text in names.items())
    if found and not found[1].get("met", True):
        line += f"; {found[2]} did not meet its false-accept target (best reachable)"
    if found and _calibrated_another_model(found[1], model.path):
        line += f"; {found[2]} was chosen for an earlier {os.path.basename(model.path)}: run `microkws calibrate` again"
    return settings, line


def _calibrated_another_model(detection, model_path):
    """Whether detection.json names this model file but with other contents (exported again since)."""
    from microkws.streaming.calibrate import file_sha256

    chosen_for = detection.get("model") if isinstance(detection.get("model"), dict) else {}
    if os.path.basename(str(chosen_for.get("path", ""))) != os.path.basename(model_path):
        return False
    return chosen_for.get("sha256") != file_sha256(model_path)
