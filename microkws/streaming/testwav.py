"""A long test recording: test-split words at random times over background noise (the original
generate_streaming_test_wav), with its ground truth. The streaming calibration at the end of training
builds the same kind of stream from the validation split (`partition`), in memory (`build_stream`).

The recording is built as the original built it:

- background: one-and-a-half-second pieces of a random `_background_noise_`
  recording, at a random volume U(0, background_volume), laid every second with
  250 ms fades in and out, so consecutive pieces cross-fade;
- words: one per `clip_duration_ms + word_gap_ms`, starting at a random point of
  the first `word_gap_ms` of each slot; a word is an unknown word with
  probability unknown_percentage / 100, else a wanted word chosen uniformly;
  its clip is a clip of that word from the chosen split, TESTING by default
  (unknown: of any word that is not wanted), mixed in at full volume with
  500-sample fades;
- the sum is clipped to [-1, 1] and written as 16-bit PCM at the sample rate.

Clips of each label are drawn without replacement until all have been used, then
reused in a new order (a long stream from a small split says each clip many times,
each time at another offset and over other noise). The ground truth lists
"label,time_ms" per word, time_ms where its clip starts.
"""

import logging

import numpy as np

from microkws.audio import to_int16
from microkws.dataset import PARTITIONS, UNKNOWN_LABEL, index_dataset, load_backgrounds, load_clips
from microkws.errors import UserError
from microkws.files import write_with
from microkws.streaming.groundtruth import GroundTruth, write_ground_truth

log = logging.getLogger(__name__)

BACKGROUND_CROSSOVER_MS = 500
WORD_RAMP_SAMPLES = 500


def make_streaming_test_wav(data_config, *, audio_path, labels_path, duration_s=600, word_gap_ms=2000,
                            background_volume=0.1, unknown_percentage=30.0, seed=0, sample_rate=16000,
                            clip_duration_ms=1000, partition="testing", progress=False):
    """Write the test recording to `audio_path` and its ground truth to `labels_path` (see the module docstring).

    data_config: a DataConfig naming the data folder, the wanted words and how to split it (only
    `partition`'s clips are used). Returns {"words": ..., "unknown_words": ..., "duration_s": ...,
    "audio": path, "labels": path}.
    """
    audio, truth, summary = build_stream(
        data_config, duration_s=duration_s, word_gap_ms=word_gap_ms, background_volume=background_volume,
        unknown_percentage=unknown_percentage, seed=seed, sample_rate=sample_rate,
        clip_duration_ms=clip_duration_ms, partition=partition, progress=progress)
    write_with(audio_path, lambda file: _write_wav(file, audio, sample_rate))
    write_ground_truth(labels_path, truth)
    return {"audio": audio_path, "labels": labels_path, **summary}


def build_stream(data_config, *, duration_s=600, word_gap_ms=2000, background_volume=0.1, unknown_percentage=30.0,
                 seed=0, sample_rate=16000, clip_duration_ms=1000, partition="testing", progress=False):
    """(int16 audio [samples], [GroundTruth of each word], summary): the recording of
    `make_streaming_test_wav`, in memory. The summary holds "duration_s", "words", "unknown_words"
    and the settings it was made with."""
    if duration_s <= 0 or word_gap_ms < 0 or not 0 <= unknown_percentage <= 100 or not 0 <= background_volume <= 1:
        raise UserError("duration must be positive, word_gap_ms not negative, unknown_percentage in 0..100 and "
                        "background_volume in 0..1")
    if partition not in PARTITIONS:
        raise ValueError(f"partition must be one of {', '.join(PARTITIONS)}, got {partition!r}")
    rng = np.random.default_rng(seed)
    total = int(round(duration_s * sample_rate))
    clip = int(clip_duration_ms * sample_rate / 1000)
    stride = int((clip_duration_ms + word_gap_ms) * sample_rate / 1000)
    gap = int(word_gap_ms * sample_rate / 1000)
    how_many = total // stride
    if how_many == 0:
        raise UserError(f"{duration_s:g} s holds no word: each takes {clip_duration_ms + word_gap_ms} ms "
                        "(clip_duration_ms + word_gap_ms)")

    index = index_dataset(data_config)
    pools = _clip_pools(index, data_config, unknown_percentage, partition)
    # Decide every word first, then read only the clips used, each once.
    plan = _plan_words(pools, data_config.wanted_words, rng, how_many=how_many, stride=stride, gap=gap,
                       unknown_percentage=unknown_percentage)

    track = np.zeros(total, np.float32)
    backgrounds = load_backgrounds(index.background_paths, sample_rate=sample_rate, min_length=clip)
    if backgrounds and background_volume > 0:
        _mix_background(track, backgrounds, rng, clip=clip, volume=background_volume, sample_rate=sample_rate)
    elif not backgrounds:
        log.warning("%s: no background recordings: the words are mixed into digital silence", data_config.data_dir)
    paths = sorted({path for _, _, path in plan})
    clips = load_clips(paths, sample_rate=sample_rate, length=clip, progress=progress,
                       description=f"loading {partition} clips")
    row = {path: i for i, path in enumerate(paths)}
    envelope = _envelope(clip, WORD_RAMP_SAMPLES, WORD_RAMP_SAMPLES)
    for offset, _, path in plan:
        end = min(total, offset + clip)
        track[offset:end] += (clips[row[path], :end - offset].astype(np.float32) / 32768) * envelope[:end - offset]

    audio = to_int16(np.clip(track, -1.0, 1.0))
    truth = [GroundTruth(label, offset * 1000 / sample_rate) for offset, label, _ in plan]
    unknown = sum(1 for _, label, _ in plan if label == UNKNOWN_LABEL)
    return audio, truth, {"duration_s": total / sample_rate, "words": len(plan), "unknown_words": unknown,
                          "partition": partition, "seed": seed, "word_gap_ms": word_gap_ms,
                          "background_volume": background_volume, "unknown_percentage": unknown_percentage}


def _clip_pools(index, data_config, unknown_percentage, partition):
    """{label: `partition` clip paths} of each wanted word and of _unknown_ (every other word)."""
    pools = {word: [] for word in data_config.wanted_words}
    for example in index.partitions[partition]:
        if example.label in pools:
            pools[example.label].append(example.path)
    pools[UNKNOWN_LABEL] = [example.path for example in index.unknown_pool[partition]]
    empty = [word for word in data_config.wanted_words if not pools[word]]
    if empty:
        raise UserError(f"{data_config.data_dir}: no {partition}-split clips of {', '.join(empty)}")
    if unknown_percentage > 0 and not pools[UNKNOWN_LABEL]:
        raise UserError(f"{data_config.data_dir}: no {partition}-split clips of other words to use as unknown "
                        "words; pass --unknown_percentage 0")
    return pools


def _plan_words(pools, wanted_words, rng, *, how_many, stride, gap, unknown_percentage):
    """[(offset in samples, label, clip path)] of each word slot, drawn as the module docstring says."""
    draws = {label: _Cycle(paths, rng) for label, paths in pools.items() if paths}
    plan = []
    for i in range(how_many):
        offset = i * stride + (int(rng.integers(gap)) if gap > 0 else 0)
        if rng.integers(100) < unknown_percentage:
            label = UNKNOWN_LABEL
        else:
            label = wanted_words[int(rng.integers(len(wanted_words)))]
        plan.append((offset, label, draws[label].next()))
    return plan


class _Cycle:
    """Random draws from `paths` without replacement, starting over when all were drawn."""

    def __init__(self, paths, rng):
        self._paths, self._rng, self._queue = list(paths), rng, []

    def next(self):
        if not self._queue:
            self._queue = [self._paths[i] for i in self._rng.permutation(len(self._paths))]
        return self._queue.pop()


def _mix_background(track, backgrounds, rng, *, clip, volume, sample_rate):
    crossover = int(BACKGROUND_CROSSOVER_MS * sample_rate / 1000)
    length = clip + crossover
    ramp = crossover // 2
    envelope = _envelope(length, ramp, ramp)
    for offset in range(0, len(track), clip):
        noise = backgrounds[int(rng.integers(len(backgrounds)))]
        start = int(rng.integers(0, max(1, len(noise) - length)))
        piece = noise[start:start + length]
        end = min(len(track), offset + len(piece))
        gain = rng.uniform(0, volume)
        track[offset:end] += piece[:end - offset] * envelope[:end - offset] * gain


def _envelope(length, ramp_in, ramp_out):
    """Fade in over `ramp_in` samples and out over the last `ramp_out` samples of `length`."""
    position = np.arange(length, dtype=np.float32)
    envelope = np.ones(length, np.float32)
    if ramp_in:
        envelope = np.minimum(envelope, position / ramp_in)
    if ramp_out:
        envelope = np.minimum(envelope, (length - position) / ramp_out)
    return envelope


def _write_wav(file, audio, sample_rate):
    import soundfile

    soundfile.write(file, audio, sample_rate, format="WAV", subtype="PCM_16")

