"""Scoring a keyword model on labelled audio, and labelling audio files (the original label_wav).

`evaluate` scores a KeywordModel (microkws.inference.load_model) on a partition of a data folder or
on every clip of a folder labelled by its subfolders; `label_files` gives the top labels of files.
"""

import logging
import os
from dataclasses import dataclass, replace

import numpy as np

from microkws.audio import AudioError, check_audio, is_audio_path
from microkws.dataset import (
    BACKGROUND_NOISE_DIR,
    SILENCE_LABEL,
    UNKNOWN_LABEL,
    DataConfig,
    index_dataset,
    keyword_indices,
    load_clips,
    load_partition,
)
from microkws.errors import UserError
from microkws.metrics import (
    accuracy,
    confusion_matrix,
    format_confusion,
    format_keyword_recall,
    keyword_recall,
    per_class,
    unknown_false_accepts,
)
from microkws.train import rundir

log = logging.getLogger(__name__)

SPLITS = ("testing", "validation", "training", "all")
"""What `evaluate` scores: a partition as training defined it, or every clip of a folder ("all")."""
SILENCE_FOLDER = "_silence_"
"""The folder of silence clips in Speech Commands' test archive (speech_commands_test_set_v0.02)."""


@dataclass(frozen=True)
class LabelledClips:
    """What `evaluate` scores: int16 clips [n, samples], their dataset labels and where they came from."""

    clips: np.ndarray
    roles: list
    """Dataset label of each clip (_silence_, _unknown_ or a word)."""
    paths: list
    """Source file of each clip; None for silence examples made of background noise."""
    description: str
    skipped: list
    """(path, reason) of files left out."""


def evaluate(model, data_dir=None, *, split="testing", data_config=None, per_file=False, progress=False):
    """Score `model` (a KeywordModel) on labelled clips; returns the report dict.

    split: "testing", "validation" or "training" take that partition as training defined it
    (`index_dataset` with the run's data settings, or `data_config`, in `data_dir`); "all" takes
    every clip under `data_dir`, labelled by its top folder: a wanted word is itself, `_silence_` is
    silence, `_background_noise_` is skipped and any other folder is an unknown word (the layout of
    speech_commands_test_set_v0.02).
    Report keys: accuracy (a fraction), labels, confusion ([true][predicted] counts), per_class,
    unknown_false_accepts, keyword_recall (at fixed false-accept rates), examples, and with
    `per_file` the "files" list of path, true and predicted label and scores.
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "all":
        if data_dir is None:
            raise UserError("--split all needs --data_dir")
        data = folder_clips(data_dir, model, progress=progress)
    else:
        data = partition_clips(model, split, data_dir=data_dir, data_config=data_config, progress=progress)
    truth = _truth_indices(data.roles, model)
    probabilities = model.predict(data.clips)
    predictions = np.argmax(probabilities, axis=-1)
    confusion = confusion_matrix(truth, predictions, len(model.labels))
    report = {
        "model": os.path.abspath(model.path),
        "runtime": model.runtime,
        "input_dtype": model.input_dtype,
        "split": split,
        "data": data.description,
        "examples": int(len(truth)),
        "accuracy": accuracy(confusion),
        "labels": list(model.labels),
        "confusion": confusion.tolist(),
        "per_class": per_class(confusion, model.labels),
        "unknown_false_accepts": unknown_false_accepts(confusion, model.labels),
        "keyword_recall": keyword_recall(probabilities, truth, model.labels),
        "skipped": [{"path": path, "reason": reason} for path, reason in data.skipped],
    }
    if per_file:
        report["files"] = [
            {"path": path, "true": model.labels[t], "predicted": model.labels[p],
             "scores": {label: round(float(s), 6) for label, s in zip(model.labels, row)}}
            for path, t, p, row in zip(data.paths, truth, predictions, probabilities)
        ]
    return report


def partition_clips(model, split, *, data_dir=None, data_config=None, progress=False):
    """LabelledClips of one partition, as training made it (silence examples included)."""
    seed = 0
    if data_config is None and model.run_dir is not None:
        run = rundir.read_run_config(model.run_dir)
        data_config, seed = run.data, run.train.seed  # the silence examples training scored
    if data_config is None:
        if data_dir is None:
            raise UserError(f"{model.path}: not in a run directory, so no data folder is known; pass --data_dir")
        data_config = DataConfig(data_dir, wanted_words=_wanted_words(model))
    if data_dir is not None:
        data_config = replace(data_config, data_dir=os.fspath(data_dir))
    index = index_dataset(data_config)
    clips, label_ids = load_partition(index, split, model.feature_config, seed=seed, progress=progress)
    if not len(clips):
        raise UserError(f"{data_config.data_dir}: the {split} partition is empty")
    examples = index.partitions[split]
    return LabelledClips(
        clips=clips,
        roles=[index.labels[i] for i in label_ids],
        paths=[example.path for example in examples],
        description=f"{os.path.abspath(data_config.data_dir)}, {split} partition ({index.split_source} split)",
        skipped=list(index.unreadable),
    )


def folder_clips(data_dir, model, *, progress=False):
    """LabelledClips of every audio file under `data_dir`, labelled by its top folder (see `evaluate`)."""
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise UserError(f"{data_dir}: no such folder")
    wanted = set(_wanted_words(model))
    paths, roles, skipped = [], [], []
    for entry in sorted(os.scandir(data_dir), key=lambda e: e.name):
        if not entry.is_dir() or entry.name.startswith(".") or entry.name == BACKGROUND_NOISE_DIR:
            continue
        folder = entry.name.lower()
        role = folder if folder in wanted else SILENCE_LABEL if folder == SILENCE_FOLDER else UNKNOWN_LABEL
        for path in _audio_under(entry.path):
            try:
                check_audio(path)
            except AudioError as error:
                skipped.append((path, str(error)))
                continue
            paths.append(path)
            roles.append(role)
    for path, reason in skipped:
        log.warning("skipped unreadable audio file: %s", reason)
    if not paths:
        raise UserError(f"{data_dir}: no audio clips in its folders; expected <word>/<clip>.wav "
                        "(Speech Commands layout)")
    clips = load_clips(paths, sample_rate=model.feature_config.sample_rate,
                       length=model.feature_config.desired_samples, progress=progress, description="loading clips")
    return LabelledClips(clips=clips, roles=roles, paths=paths, skipped=skipped,
                         description=f"{os.path.abspath(data_dir)}, every clip, labelled by folder")


def _audio_under(folder):
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, name) for name in sorted(files)
                  if not name.startswith(".") and is_audio_path(name)]
    return found


def _wanted_words(model):
    return tuple(model.roles[i] for i in keyword_indices(model.labels))


def _truth_indices(roles, model):
    index = {role: i for i, role in enumerate(model.roles)}
    missing = sorted({role for role in roles if role not in index})
    if missing:
        raise UserError(f"the data has {', '.join(missing)} examples but {model.path} has no such output "
                        f"(its labels: {', '.join(model.labels)})")
    return np.asarray([index[role] for role in roles], dtype=np.int64)


def format_evaluation(report):
    """The text `microkws evaluate` prints: accuracy, false accepts, per-class table, confusion matrix."""
    confusion = np.asarray(report["confusion"])
    lines = [
        f"model: {report['model']} ({report['runtime']}, {report['input_dtype']} input)",
        f"data: {report['data']}: {report['examples']} examples",
        f"accuracy: {100 * report['accuracy']:.2f}% ({int(np.trace(confusion))} of {report['examples']})",
    ]
    accepts = report["unknown_false_accepts"]
    if accepts["rate"] is not None:
        lines.append(f"unknown words taken for a wanted word (false accepts): {100 * accepts['rate']:.2f}% "
                     f"({accepts['accepted']} of {accepts['unknown_clips']})")
    else:
        lines.append("unknown words taken for a wanted word: no unknown-word clips")
    if report.get("keyword_recall"):
        lines.append(format_keyword_recall(report["keyword_recall"]))
    if report["skipped"]:
        lines.append(f"skipped {len(report['skipped'])} unreadable file(s); first: {report['skipped'][0]['reason']}")
    width = max(9, *(len(label) + 2 for label in report["labels"]))
    lines.append("")
    lines.append("label".ljust(width) + "precision".rjust(11) + "recall".rjust(9) + "support".rjust(9))
    for label, entry in report["per_class"].items():
        lines.append(label.ljust(width) + f"{100 * entry['precision']:10.1f}%" + f"{100 * entry['recall']:8.1f}%"
                     + str(entry["support"]).rjust(9))
    lines.append("")
    lines.append(format_confusion(confusion, report["labels"]))
    return "\n".join(lines)


# --- labelling files (the original label_wav) -----------------------------------------------------------------------


def audio_files(paths):
    """The audio files named by `paths`: files as given, folders searched recursively (sorted)."""
    found = []
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            inside = _audio_under(path)
            if not inside:
                raise UserError(f"{path}: no audio files in this folder (looked for "
                                ".wav, .flac, .ogg, .aiff, ...)")
            found += inside
        elif os.path.isfile(path):
            if not is_audio_path(path):
                log.warning("%s: no audio extension; reading it anyway", path)
            found.append(path)
        else:
            raise UserError(f"{path}: no such file or directory")
    return found


def label_files(model, paths, *, how_many_labels=3):
    """[(path, [(label, probability), ...best first])] for each audio file under `paths`.

    Each file is read as training reads clips (resampled, mono, padded or trimmed to one clip,
    keeping the loudest second of a longer recording); features are computed in one batch.
    """
    if how_many_labels < 1:
        raise UserError(f"--how_many_labels must be at least 1, got {how_many_labels}")
    files = audio_files(paths)
    clips = load_clips(files, sample_rate=model.feature_config.sample_rate,
                       length=model.feature_config.desired_samples)
    probabilities = model.predict(clips)
    results = []
    for path, row in zip(files, probabilities):
        best = np.argsort(-row, kind="stable")[:how_many_labels]
        results.append((path, [(model.labels[i], float(row[i])) for i in best]))
    return results
