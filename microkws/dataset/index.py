"""The data index: which clip is in which partition, with which label.

A data folder has the Speech Commands layout: one folder per word holding
its clips, plus `_background_noise_` with long noise recordings. Labels are
`_silence_`, `_unknown_`, then the wanted words in the order given. Each
partition holds every clip of a wanted word, then silence and unknown
examples sized as a percentage of that count, as the original computes them.
"""

import logging
import math
import os
import random
from collections import Counter
from dataclasses import asdict, dataclass, field

from microkws.audio import AudioError, check_audio, is_audio_path
from microkws.dataset.labels import BACKGROUND_NOISE_DIR, SILENCE_LABEL, UNKNOWN_LABEL
from microkws.dataset.split import PARTITIONS, TESTING_LIST, VALIDATION_LIST, read_list_file, which_set
from microkws.errors import UserError

log = logging.getLogger(__name__)

MAX_EXTRA_PERCENTAGE = 10000
"""Silence and unknown examples, at most 100 times the wanted-word clips (more is memory, not data)."""

DEFAULT_WANTED_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
RANDOM_SEED = 59185  # the original's seed for drawing unknown clips


@dataclass(frozen=True)
class DataConfig:
    """Where the clips are and how they become labelled partitions."""

    data_dir: str
    """Folder in Speech Commands layout: <word>/<clip>.wav and _background_noise_/."""
    wanted_words: tuple = DEFAULT_WANTED_WORDS
    """Words to recognise, in label order after _silence_ and _unknown_."""
    silence_percentage: float = 10.0
    """Silence examples per partition, as a percentage of its wanted-word clips."""
    unknown_percentage: float = 10.0
    """Unknown-word examples per partition, as a percentage of its wanted-word clips."""
    validation_percentage: float = 10.0
    """Share of speakers in validation, for the file-name split."""
    testing_percentage: float = 10.0
    """Share of speakers in testing, for the file-name split."""
    split: str = "auto"
    """"auto": the folder's list files if it has them, else the file-name hash; or "lists" / "hash"."""
    strict: bool = False
    """Fail on an unreadable audio file instead of skipping it."""
    seed: int = RANDOM_SEED
    """Seed for drawing the unknown examples."""

    def __post_init__(self):
        words = tuple(word.strip().lower() for word in self.wanted_words if word.strip())
        object.__setattr__(self, "wanted_words", words)
        object.__setattr__(self, "data_dir", os.fspath(self.data_dir))
        if not words:
            raise UserError("wanted_words is empty; name at least one word, e.g. --wanted_words up,down")
        duplicates = sorted(word for word, n in Counter(words).items() if n > 1)
        if duplicates:
            raise UserError(f"wanted_words names {', '.join(duplicates)} more than once")
        reserved = {SILENCE_LABEL, UNKNOWN_LABEL, BACKGROUND_NOISE_DIR} & set(words)
        if reserved:
            raise UserError(f"wanted_words cannot include {', '.join(sorted(reserved))}")
        # Silence and unknown may exceed 100 %: they are relative to the wanted-word count.
        for name in ("silence_percentage", "unknown_percentage"):
            if not 0 <= getattr(self, name) <= MAX_EXTRA_PERCENTAGE:
                raise UserError(f"{name} must be from 0 to {MAX_EXTRA_PERCENTAGE}, got {getattr(self, name)}")
        for name in ("validation_percentage", "testing_percentage"):
            if not 0 <= getattr(self, name) <= 100:
                raise UserError(f"{name} must be between 0 and 100, got {getattr(self, name)}")
        if self.validation_percentage + self.testing_percentage > 100:
            raise UserError("validation_percentage + testing_percentage must not exceed 100")
        if self.split not in ("auto", "lists", "hash"):
            raise UserError(f"split must be auto, lists or hash, got {self.split!r}")

    @property
    def labels(self):
        """("_silence_", "_unknown_", *wanted_words): index i is the model's output i."""
        return (SILENCE_LABEL, UNKNOWN_LABEL) + self.wanted_words

    def to_dict(self):
        data = asdict(self)
        data["wanted_words"] = list(self.wanted_words)
        return data


@dataclass(frozen=True)
class Example:
    """One labelled example. Silence examples have no file: they are made of background noise."""

    path: str | None
    label: str
    word: str = ""


@dataclass
class DataIndex:
    """The partitions of a data folder, and what was skipped on the way."""

    config: DataConfig
    partitions: dict
    """partition name -> list of Example, the original's composition."""
    unknown_pool: dict
    """partition name -> every clip of a word that is not wanted (unknown candidates)."""
    background_paths: list
    split_source: str
    """"lists" or "hash": what decided the partitions."""
    words_found: list
    skipped_non_audio: int = 0
    unreadable: list = field(default_factory=list)
    """(path, reason) of audio files that could not be read."""
    missing_listed: list = field(default_factory=list)
    """List-file entries that name no clip in the folder."""

    @property
    def labels(self):
        return self.config.labels

    def counts(self):
        """partition -> {label: examples}, in label order."""
        return {
            partition: {label: sum(1 for e in examples if e.label == label) for label in self.labels}
            for partition, examples in self.partitions.items()
        }

    def label_ids(self, partition):
        """Integer label of each example of `partition`, as the model's outputs number them."""
        ids = {label: i for i, label in enumerate(self.labels)}
        return [ids[example.label] for example in self.partitions[partition]]


def index_dataset(config):
    """Scan `config.data_dir` and build the labelled partitions.

    Non-audio files are skipped and counted; unreadable audio files are
    reported by path and skipped (or raise with `strict`).
    """
    data_dir = config.data_dir
    if not os.path.isdir(data_dir):
        raise UserError(
            f"{data_dir}: data folder not found; pass --data_dir with a folder in Speech Commands layout "
            "or run `microkws download`"
        )
    clips_by_word, background_paths, skipped, unreadable = _scan(data_dir, strict=config.strict)
    if not clips_by_word:
        raise UserError(f"{data_dir}: no audio clips found; expected <word>/<clip>.wav folders (Speech Commands layout)")
    words_found = sorted(clips_by_word)
    missing = [word for word in config.wanted_words if word not in clips_by_word]
    if missing:
        raise UserError(
            f"{data_dir}: wanted word(s) {', '.join(missing)} not found; words found: {', '.join(words_found)}"
        )

    partition_of, split_source, missing_listed = _partitioner(data_dir, config)
    wanted = {partition: [] for partition in PARTITIONS}
    unknown_pool = {partition: [] for partition in PARTITIONS}
    for word in words_found:
        label = word if word in config.wanted_words else UNKNOWN_LABEL
        target = wanted if label != UNKNOWN_LABEL else unknown_pool
        for relative in clips_by_word[word]:
            target[partition_of(relative)].append(Example(os.path.join(data_dir, relative), label, word))

    rng = random.Random(config.seed)
    partitions = {}
    for partition in ("validation", "testing", "training"):  # the original's order, for its random draws
        examples = wanted[partition]
        set_size = len(examples)
        silence_size = math.ceil(set_size * config.silence_percentage / 100)
        unknown_size = math.ceil(set_size * config.unknown_percentage / 100)
        candidates = list(unknown_pool[partition])
        rng.shuffle(candidates)
        partitions[partition] = (
            examples + [Example(None, SILENCE_LABEL)] * silence_size + candidates[:unknown_size]
        )
    partitions = {partition: partitions[partition] for partition in PARTITIONS}

    index = DataIndex(
        config=config,
        partitions=partitions,
        unknown_pool=unknown_pool,
        background_paths=background_paths,
        split_source=split_source,
        words_found=words_found,
        skipped_non_audio=skipped,
        unreadable=unreadable,
        missing_listed=missing_listed,
    )
    _warn_about(index)
    return index


def _scan(data_dir, *, strict):
    """word -> sorted relative clip paths; background paths; non-audio count; unreadable files."""
    clips_by_word = {}
    background_paths = []
    skipped = 0
    unreadable = []
    for entry in sorted(os.scandir(data_dir), key=lambda e: e.name):
        if entry.name.startswith(".") or not _is(entry, "dir"):
            continue
        word = entry.name.lower()
        try:
            files = sorted(os.scandir(entry.path), key=lambda e: e.name)
        except OSError as error:  # a symlink loop, a folder we may not read
            if strict:
                raise UserError(f"{entry.path}: cannot read the folder ({error.strerror or error})") from None
            log.warning("%s: folder skipped, cannot read it (%s)", entry.path, error.strerror or error)
            continue
        for file in files:
            if file.name.startswith(".") or not _is(file, "file"):
                continue
            if not is_audio_path(file.name):
                skipped += 1
                continue
            try:
                check_audio(file.path)
            except AudioError as error:
                if strict:
                    raise
                unreadable.append((file.path, str(error)))
                continue
            if word == BACKGROUND_NOISE_DIR:
                background_paths.append(file.path)
            else:
                clips_by_word.setdefault(word, []).append(f"{entry.name}/{file.name}")
    return clips_by_word, background_paths, skipped, unreadable


def _is(entry, kind):
    """entry.is_dir() / is_file(), False (with a warning) for a symlink loop or a link we may not follow."""
    try:
        return entry.is_dir() if kind == "dir" else entry.is_file()
    except OSError as error:
        log.warning("%s: skipped (%s)", entry.path, error.strerror or error)
        return False


def _partitioner(data_dir, config):
    """A function relative path -> partition, what decided it, and list entries naming no file."""
    list_paths = {name: os.path.join(data_dir, name) for name in (VALIDATION_LIST, TESTING_LIST)}
    present = {name: path for name, path in list_paths.items() if os.path.isfile(path)}
    listed = {name: read_list_file(path) for name, path in present.items()}
    use_lists = config.split == "lists" or (config.split == "auto" and any(listed.values()))
    if config.split == "lists" and not present:
        raise UserError(f"{data_dir}: --split lists needs {VALIDATION_LIST} and {TESTING_LIST}; neither is there")
    for name in present:
        if not listed[name] and use_lists:
            log.warning("%s is empty: its partition will have no clips", present[name])
        elif not listed[name]:
            log.warning("%s is empty; using the file-name hash split instead", present[name])

    if not use_lists:
        def by_hash(relative):
            return which_set(relative, config.validation_percentage, config.testing_percentage)

        return by_hash, "hash", []

    assignment = {}
    for name, partition in ((VALIDATION_LIST, "validation"), (TESTING_LIST, "testing")):
        for relative in listed.get(name, []):
            assignment[_normalise(relative)] = partition
    missing = sorted(
        relative for relative in assignment if not os.path.isfile(os.path.join(data_dir, relative))
    )

    def by_list(relative):
        return assignment.get(_normalise(relative), "training")

    return by_list, "lists", missing


def _normalise(relative):
    """List files name clips as word/file.wav; compare folder names case-insensitively."""
    word, _, name = relative.replace("\\", "/").partition("/")
    return f"{word.lower()}/{name}"


def _warn_about(index):
    data_dir = index.config.data_dir
    if index.skipped_non_audio:
        log.warning("%s: skipped %d non-audio file(s)", data_dir, index.skipped_non_audio)
    for path, reason in index.unreadable:
        log.warning("skipped unreadable audio file: %s", reason if path in reason else f"{path}: {reason}")
    if index.missing_listed:
        log.warning(
            "%s: %d list-file entr%s name clips that are not in the folder (first: %s)",
            data_dir,
            len(index.missing_listed),
            "y" if len(index.missing_listed) == 1 else "ies",
            index.missing_listed[0],
        )
    if not index.background_paths:
        log.warning(
            "%s: no %s recordings: silence examples will be digital silence and no noise is mixed in",
            data_dir,
            BACKGROUND_NOISE_DIR,
        )
    for partition, examples in index.partitions.items():
        words = [e for e in examples if e.label not in (SILENCE_LABEL, UNKNOWN_LABEL)]
        if not words:
            log.warning("%s: the %s partition has no clips of the wanted words", data_dir, partition)
