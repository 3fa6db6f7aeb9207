import hashlib
import logging
import math
import re

import numpy as np
import pytest
import soundfile
from conftest import make_mini_dataset, write_tone

from microkws.audio import AudioError
from microkws.dataset import (
    SILENCE_LABEL,
    UNKNOWN_LABEL,
    AugmentConfig,
    DataConfig,
    augment,
    clips_by_path,
    index_dataset,
    load_clips,
    load_partition,
    time_shift,
    which_set,
)
from microkws.errors import UserError
from microkws.features import FeatureConfig


# --- the file-name split --------------------------------------------------------------------------


def test_which_set_puts_every_sample_speaker_in_testing(sample_dir):
    # The sample's README: every speaker in it falls in the `testing` partition of the original split.
    names = [p.name for p in sample_dir.glob("*/*_nohash_*.wav")]
    assert len(names) > 2000
    assert {which_set(name, 10, 10) for name in names} == {"testing"}


def test_which_set_golden_clips_are_in_testing():
    # golden.json: these two clips come from the v0.02 test set.
    assert which_set("yes/f2e59fea_nohash_1.wav", 10, 10) == "testing"
    assert which_set("no/f9643d42_nohash_4.wav", 10, 10) == "testing"


def test_which_set_ignores_the_nohash_suffix_and_folder():
    assert which_set("a/0a7c2a8d_nohash_0.wav", 10, 10) == which_set("b/0a7c2a8d_nohash_3.wav", 10, 10)


def test_which_set_matches_the_formula_and_moves_with_percentages():
    name = "0a7c2a8d_nohash_0.wav"
    bucket = int(hashlib.sha1(b"0a7c2a8d").hexdigest(), 16) % 2**27
    percentage = bucket * (100.0 / (2**27 - 1))
    assert which_set(name, percentage + 0.001, 0) == "validation"
    assert which_set(name, percentage - 0.001, 0.002) == "testing"
    assert which_set(name, percentage - 0.002, 0.001) == "training"


# --- the index --------------------------------------------------------------------------------------


def test_sample_counts_match_the_list_files(sample_dir):
    config = DataConfig(sample_dir, wanted_words=("up", "down"), silence_percentage=25, unknown_percentage=25)
    index = index_dataset(config)
    assert index.labels == (SILENCE_LABEL, UNKNOWN_LABEL, "up", "down")
    assert index.split_source == "lists"
    validation = (sample_dir / "validation_list.txt").read_text().split()
    testing = (sample_dir / "testing_list.txt").read_text().split()
    counts = index.counts()
    for word in ("up", "down"):
        total = len(list((sample_dir / word).glob("*.wav")))
        listed_val = sum(1 for line in validation if line.startswith(f"{word}/"))
        listed_test = sum(1 for line in testing if line.startswith(f"{word}/"))
        assert counts["validation"][word] == listed_val
        assert counts["testing"][word] == listed_test
        assert counts["training"][word] == total - listed_val - listed_test
    for partition, row in counts.items():
        wanted = row["up"] + row["down"]
        assert row[SILENCE_LABEL] == math.ceil(wanted * 0.25)
        assert row[UNKNOWN_LABEL] == math.ceil(wanted * 0.25)
    # Unknowns come from the other words of the same partition, never from wanted words.
    train_paths = {e.path for e in index.partitions["training"]}
    for example in index.partitions["training"]:
        if example.label == UNKNOWN_LABEL:
            assert example.word not in ("up", "down")
            relative = f"{example.word}/{example.path.rsplit('/', 1)[1]}"
            assert relative not in validation and relative not in testing
    val_paths = {e.path for e in index.partitions["validation"] if e.path}
    assert not (train_paths & val_paths)


def test_unknown_draw_is_seeded(sample_dir):
    config = DataConfig(sample_dir, wanted_words=("up",), unknown_percentage=30)
    first = index_dataset(config).partitions["training"]
    assert first == index_dataset(config).partitions["training"]
    other = index_dataset(DataConfig(sample_dir, wanted_words=("up",), unknown_percentage=30, seed=1))
    assert other.partitions["training"] != first


def test_hash_split_without_lists(tmp_path, sample_dir):
    root = make_mini_dataset(tmp_path / "d", sample_dir, with_lists=False)
    index = index_dataset(DataConfig(root, wanted_words=("up", "down")))
    assert index.split_source == "hash"
    # Every sample speaker hashes to testing.
    assert index.counts()["testing"]["up"] == len(list((root / "up").glob("*.wav")))


def test_labels_are_silence_unknown_then_wanted_in_order(mini_dataset):
    index = index_dataset(DataConfig(mini_dataset, wanted_words=("down", "up")))
    assert index.labels == ("_silence_", "_unknown_", "down", "up")
    ids = index.label_ids("training")
    labels = [e.label for e in index.partitions["training"]]
    assert [index.labels[i] for i in ids] == labels


def test_missing_data_dir(tmp_path):
    with pytest.raises(UserError, match=re.escape(str(tmp_path / "nope")) + ".*--data_dir"):
        index_dataset(DataConfig(tmp_path / "nope"))


def test_data_dir_without_word_folders(tmp_path):
    (tmp_path / "README.txt").write_text("hi")
    with pytest.raises(UserError, match="no audio clips found"):
        index_dataset(DataConfig(tmp_path))


def test_wanted_word_not_there_lists_the_words_found(mini_dataset):
    with pytest.raises(UserError) as caught:
        index_dataset(DataConfig(mini_dataset, wanted_words=("up", "banana")))
    assert "banana" in str(caught.value) and "words found: down, go, left, right, up" in str(caught.value)


def test_bad_and_odd_files_in_a_data_folder(mini_dataset, caplog):
    up = mini_dataset / "up"
    good = next(up.glob("*.wav")).read_bytes()
    (up / "empty.wav").write_bytes(b"")
    (up / "truncated.wav").write_bytes(good[:20])
    (up / "text.wav").write_text("not audio")
    soundfile.write(up / "zero.wav", np.zeros(0, dtype=np.int16), 16000, subtype="PCM_16")
    (up / "notes.txt").write_text("hello")
    (up / "image.png").write_bytes(b"\x89PNG")
    for name, kwargs in {
        "u8.wav": dict(subtype="PCM_U8"), "s24.wav": dict(subtype="PCM_24"), "f32.wav": dict(subtype="FLOAT"),
        "stereo.wav": dict(channels=2), "r8k.wav": dict(rate=8000), "r44k.wav": dict(rate=44100),
        "long.wav": dict(seconds=3.0), "short.wav": dict(seconds=0.2),
    }.items():
        write_tone(up / name, **kwargs)
    with caplog.at_level(logging.WARNING):
        index = index_dataset(DataConfig(mini_dataset, wanted_words=("up", "down")))
    assert index.skipped_non_audio == 2
    assert sorted(p.rsplit("/", 1)[1] for p, _ in index.unreadable) == [
        "empty.wav", "text.wav", "truncated.wav", "zero.wav"]
    assert "skipped 2 non-audio file(s)" in caplog.text
    assert str(up / "text.wav") in caplog.text
    # The odd-but-valid files are training clips and load to one second each.
    names = {e.path.rsplit("/", 1)[1] for e in index.partitions["training"] if e.path}
    assert {"u8.wav", "s24.wav", "f32.wav", "stereo.wav", "r8k.wav", "r44k.wav", "long.wav", "short.wav"} <= names
    clips, labels = load_partition(index, "training", FeatureConfig())
    assert clips.shape == (len(labels), 16000)
    with pytest.raises(AudioError, match="empty.wav"):
        index_dataset(DataConfig(mini_dataset, wanted_words=("up", "down"), strict=True))


def test_an_unreadable_word_folder_is_skipped_with_a_warning(mini_dataset, monkeypatch, caplog):
    # Permission bits do not stop root (CI runs as root), so the folder refuses reads as the kernel does.
    import errno
    import os

    real_scandir = os.scandir

    def scandir(path="."):
        if os.path.basename(os.fspath(path)) == "go":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with caplog.at_level(logging.WARNING):
        index = index_dataset(DataConfig(mini_dataset, wanted_words=("up", "down")))
    assert f"{mini_dataset / 'go'}: folder skipped, cannot read it (Permission denied)" in caplog.text
    assert {os.path.basename(os.path.dirname(e.path)) for e in index.unknown_pool["training"]} == {"left", "right"}
    with pytest.raises(UserError, match=f"^{mini_dataset / 'go'}: cannot read the folder \\(Permission denied\\)$"):
        index_dataset(DataConfig(mini_dataset, wanted_words=("up", "down"), strict=True))


def test_empty_list_files_fall_back_to_the_hash_split(mini_dataset, caplog):
    (mini_dataset / "validation_list.txt").write_text("")
    (mini_dataset / "testing_list.txt").write_text("")
    with caplog.at_level(logging.WARNING):
        index = index_dataset(DataConfig(mini_dataset, wanted_words=("up", "down")))
    assert index.split_source == "hash"
    assert "validation_list.txt is empty" in caplog.text


def test_list_files_naming_missing_clips_are_counted(mini_dataset, caplog):
    with open(mini_dataset / "testing_list.txt", "a") as lists:
        lists.write("up/ghost_nohash_0.wav\nup/ghost_nohash_1.wav\n")
    with caplog.at_level(logging.WARNING):
        index = index_dataset(DataConfig(mini_dataset, wanted_words=("up", "down")))
    assert index.missing_listed == ["up/ghost_nohash_0.wav", "up/ghost_nohash_1.wav"]
    assert "2 list-file entries name clips that are not in the folder" in caplog.text
    assert all("ghost" not in (e.path or "") for e in index.partitions["testing"])


def test_config_errors():
    with pytest.raises(UserError, match="more than once"):
        DataConfig("x", wanted_words=("up", "up"))
    with pytest.raises(UserError, match="silence_percentage must be from 0 to 10000"):
        DataConfig("x", silence_percentage=-1)
    with pytest.raises(UserError, match="testing_percentage must be between 0 and 100"):
        DataConfig("x", testing_percentage=120)


def test_unknown_percentage_above_100_takes_every_unknown_clip(sample_dir):
    index = index_dataset(DataConfig(sample_dir, wanted_words=("up", "down"), unknown_percentage=10000))
    assert index.counts()["testing"]["_unknown_"] == len(index.unknown_pool["testing"]) > 300


# --- loading and augmentation ----------------------------------------------------------------------


def test_evaluation_silence_is_fixed_noise(mini_dataset):
    config = DataConfig(mini_dataset, wanted_words=("up", "down"), silence_percentage=50)
    index = index_dataset(config)
    first, labels = load_partition(index, "validation", FeatureConfig(), seed=3)
    again, _ = load_partition(index, "validation", FeatureConfig(), seed=3)
    other, _ = load_partition(index, "validation", FeatureConfig(), seed=4)
    silent = labels == 0
    assert silent.any()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first[silent], other[silent])
    assert first[silent].std() > 0  # noise, not digital silence
    np.testing.assert_array_equal(first[~silent], other[~silent])



def test_clips_read_for_another_set_are_reused_as_read(mini_dataset):
    from microkws.train.data import with_every_unknown

    index = index_dataset(DataConfig(mini_dataset, wanted_words=("up", "down"), silence_percentage=50))
    wide = with_every_unknown(index, "testing")
    wide_clips, _ = load_partition(wide, "testing", FeatureConfig(), seed=3)
    loaded = clips_by_path(wide.partitions["testing"], wide_clips)
    reused, labels = load_partition(index, "testing", FeatureConfig(), seed=3, loaded=loaded)
    read, read_labels = load_partition(index, "testing", FeatureConfig(), seed=3)
    np.testing.assert_array_equal(reused, read)
    np.testing.assert_array_equal(labels, read_labels)
    paths = [e.path for e in index.partitions["training"] if e.path]
    marker = np.full(16000, 7, dtype=np.int16)
    clips = load_clips(paths, sample_rate=16000, length=16000, loaded={paths[0]: marker})
    np.testing.assert_array_equal(clips[0], marker)  # taken from `loaded`, not read
    np.testing.assert_array_equal(clips[1:], load_clips(paths[1:], sample_rate=16000, length=16000))

def test_time_shift_pads_with_zeros():
    clips = np.arange(1, 11, dtype=np.float32)[None].repeat(3, axis=0)
    shifted = time_shift(clips, np.array([2, -3, 0]))
    np.testing.assert_array_equal(shifted[0], [0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    np.testing.assert_array_equal(shifted[1], [4, 5, 6, 7, 8, 9, 10, 0, 0, 0])
    np.testing.assert_array_equal(shifted[2], clips[2])


def test_augment_as_the_original():
    rng = np.random.default_rng(0)
    clips = np.full((2000, 1600), 0.9, dtype=np.float32)
    is_silence = np.zeros(2000, dtype=bool)
    is_silence[:500] = True
    backgrounds = [np.full(5000, 0.5, dtype=np.float32)]
    config = AugmentConfig(time_shift_ms=10, background_volume=0.1, background_frequency=0.8)
    out = augment(clips, is_silence, backgrounds, config, sample_rate=16000, rng=rng)
    assert out.min() >= -1 and out.max() <= 1
    silence = out[:500, 200]
    assert np.all(silence <= 0.5) and silence.std() > 0.1  # noise at U(0, 1) volume, no foreground
    speech = out[500:, 800]  # the middle stays inside the clip whatever the shift
    noisy = speech > 0.9
    assert 0.7 < noisy.mean() < 0.9  # background_frequency
    assert np.all(speech <= 0.9 + 0.1 * 0.5 + 1e-6)
    shifts = [(np.argmax(row > 0) if row[0] == 0 else 0) for row in out[500:] if row[0] == 0]
    assert max(shifts) <= 160
    # Seeded: the same generator seed gives the same batch.
    again = augment(clips, is_silence, backgrounds, config, sample_rate=16000, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(out, again)


def test_augment_clips_to_unit_range():
    clips = np.full((4, 100), 0.99, dtype=np.float32)
    out = augment(clips, np.zeros(4, bool), [np.ones(1000, np.float32)],
                  AugmentConfig(time_shift_ms=0, background_volume=1, background_frequency=1),
                  sample_rate=16000, rng=np.random.default_rng(1))
    assert out.max() <= 1.0


@pytest.mark.parametrize("config", [
    AugmentConfig(background_volume=0.5),  # loud noise on loud speech: many samples clip
    AugmentConfig(gain_db=12, background_snr_db=(-5, 20), speed_perturbation=0.1),
    AugmentConfig(frontend_warmup_ms=100, silence_volume=2.0),
], ids=["volume", "snr-gain-speed", "warmup"])
@pytest.mark.parametrize("dtype", ["int16", "float32"])
def test_augment_straight_to_int16_is_to_int16_of_the_float_batch(config, dtype):
    """augment(int16=True) mixes in units of 1/32768: bit for bit to_int16 of the float result."""
    from microkws.audio import to_int16

    rng = np.random.default_rng(3)
    clips = (rng.normal(0, 9000, size=(64, 16000)).clip(-32768, 32767)).astype(np.int16)
    clips = clips if dtype == "int16" else (clips / np.float32(32768)).astype(np.float32)
    backgrounds = [rng.normal(0, 0.3, size=40000).astype(np.float32), rng.uniform(-1, 1, 20000).astype(np.float32)]
    is_silence = np.arange(64) % 5 == 0

    def made(int16):
        return augment(clips, is_silence, backgrounds, config, sample_rate=16000, rng=np.random.default_rng(7),
                       lead_samples=1600 if config.frontend_warmup_ms else 0, int16=int16)

    expected, direct = to_int16(made(False)), made(True)
    assert direct.dtype == np.int16 and np.sum(np.abs(expected) == 32767) > 100  # the clipping is exercised
    np.testing.assert_array_equal(direct, expected)


def test_augment_lead_carries_each_rows_own_background_back_for_a_uniform_share():
    """frontend_warmup_ms: the clip sits at the end of a longer row, and the row's own noise (the same
    recording and level) runs back into the lead for 0..lead samples, zeros before; 0 changes nothing."""
    lead, length = 800, 1600
    ramp = [np.linspace(-0.5, 0.5, 40000, dtype=np.float32)]  # a slice's start is told by its values
    config = AugmentConfig(time_shift_ms=0, background_volume=0.1, background_frequency=1.0)
    clips = np.zeros((300, length), dtype=np.float32)
    out = augment(clips, np.zeros(300, bool), ramp, config, sample_rate=16000, rng=np.random.default_rng(0),
                  lead_samples=lead)
    assert out.shape == (300, lead + length)
    heard = []
    for row in out:
        steps = np.diff(row[np.flatnonzero(row)])
        assert np.allclose(steps, steps[0], atol=1e-7)  # one contiguous stretch of one recording, one level
        heard.append(np.count_nonzero(row) - length)
    heard = np.asarray(heard)
    assert heard.min() >= 0 and heard.max() <= lead and np.all(out[:, lead:] != 0)
    assert heard.std() > lead / 5  # spread over the lead, not one fixed share
    plain = augment(clips, np.zeros(300, bool), ramp, config, sample_rate=16000, rng=np.random.default_rng(0))
    again = augment(clips, np.zeros(300, bool), ramp, config, sample_rate=16000, rng=np.random.default_rng(0),
                    lead_samples=0)
    np.testing.assert_array_equal(plain, again)
    with pytest.raises(UserError, match="frontend_warmup_ms"):
        AugmentConfig(frontend_warmup_ms=-1)


def test_change_speed_plays_faster_about_the_centre():
    """speed_perturbation: a tone played 1.25 times as fast has 1.25 times its frequency and keeps the
    clip's length; its centre stays put, and what it ran out of is zeros."""
    from microkws.dataset.augment import change_speed

    rate, length = 16000, 16000
    tone = np.sin(2 * np.pi * 400 * np.arange(length) / rate).astype(np.float32)
    faster = change_speed(tone, 1.25)
    assert faster.shape == tone.shape and faster.dtype == np.float32
    spectrum = np.abs(np.fft.rfft(faster))
    assert abs(np.argmax(spectrum) * rate / length - 500) <= 1
    assert np.all(faster[:1000] == 0) and np.all(faster[-1000:] == 0)  # 1.25x covers 12,800 samples
    slower = change_speed(tone, 0.8)
    assert abs(np.argmax(np.abs(np.fft.rfft(slower))) * rate / length - 320) <= 1 and np.all(slower[:100] != 0)
    np.testing.assert_array_equal(change_speed(tone, 1.0), tone)


def test_augment_speed_perturbation_is_drawn_only_when_asked():
    clips = np.tile(np.sin(np.linspace(0, 300, 1600, dtype=np.float32)), (50, 1))
    config = AugmentConfig(time_shift_ms=0, background_frequency=0)
    plain = augment(clips, np.zeros(50, bool), [], config, sample_rate=16000, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(plain, clips)
    varied = augment(clips, np.zeros(50, bool), [], AugmentConfig(time_shift_ms=0, background_frequency=0,
                                                                  speed_perturbation=0.1),
                     sample_rate=16000, rng=np.random.default_rng(3))
    assert len({row.tobytes() for row in varied}) == 50
    with pytest.raises(UserError, match="speed_perturbation"):
        AugmentConfig(speed_perturbation=0.6)


@pytest.mark.parametrize("simd", [True, False], ids=["simd", "portable"])
@pytest.mark.parametrize("case", ["shifts", "lead", "short-noise", "no-noise", "gain-loud", "overdrive"])
def test_augment_kernel_is_numpy_bit_for_bit(case, simd, monkeypatch):
    """augment()'s int16 rows come from one C pass per row (dataset/_mix.c): the same values as the numpy
    rows, clipped and cast, and the same random stream, on both code paths and every segment layout."""
    import importlib

    from microkws.dataset import _mix

    module = importlib.import_module("microkws.dataset.augment")

    rng = np.random.default_rng(11)
    length = 4000
    clips = rng.normal(0, 12000, size=(200, length)).clip(-32768, 32767).astype(np.int16)
    backgrounds = [rng.normal(0, 0.4, size=30000).astype(np.float32), rng.uniform(-1, 1, 9000).astype(np.float32)]
    config, lead = {
        "shifts": (AugmentConfig(time_shift_ms=249, background_volume=0.6), 0),  # shifts up to the whole clip
        "lead": (AugmentConfig(frontend_warmup_ms=300, time_shift_ms=100, silence_volume=1.5), 4800),
        "short-noise": (AugmentConfig(frontend_warmup_ms=400), 6400),  # rows longer than the 9,000-sample noise
        "no-noise": (AugmentConfig(background_frequency=0.0, gain_db=20), 0),
        "gain-loud": (AugmentConfig(gain_db=30, background_volume=1.0, background_frequency=1.0), 800),
        "overdrive": (AugmentConfig(overdrive_frequency=0.5, overdrive_db=12, frontend_warmup_ms=100), 1600),
    }[case]
    is_silence = rng.random(200) < 0.2
    monkeypatch.setattr(module, "_mix", type("Kernel", (), {
        "mix_rows": staticmethod(lambda *args: _mix.mix_rows(*args, simd))}))

    def made(kernel):
        generator = np.random.default_rng(5)
        if kernel:
            out = augment(clips, is_silence, backgrounds, config, sample_rate=16000, rng=generator,
                          lead_samples=lead, int16=True)
        else:
            # Float clips take the numpy rows.
            out = augment(clips.astype(np.float32) / np.float32(32768), is_silence, backgrounds, config,
                          sample_rate=16000, rng=generator, lead_samples=lead, int16=True)
        return out, generator.random()

    (fast, after_fast), (slow, after_slow) = made(True), made(False)
    assert fast.dtype == np.int16 and fast.shape == (200, lead + length)
    assert np.any(fast == 32767) and np.any(fast == -32768)  # saturation is exercised
    np.testing.assert_array_equal(fast, slow)
    assert after_fast == after_slow  # the same draws, in the same order
