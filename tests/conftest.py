import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MICROKWS_SHARED", ROOT.parent / "shared"))
SAMPLE_DIR = SHARED / "data" / "speech_commands_sample"
TESTVECTORS = SHARED / "testvectors" / "tflm_micro_speech"


def pytest_report_header(config):
    return f"shared data: {SHARED} ({'found' if SAMPLE_DIR.is_dir() else 'MISSING'})"


@pytest.fixture(scope="session")
def sample_dir():
    if not SAMPLE_DIR.is_dir():
        pytest.fail(f"{SAMPLE_DIR} is missing: the tests need ../shared beside the repository")
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def testvectors():
    return TESTVECTORS


def make_mini_dataset(root, sample_dir, words_per_label=None, with_lists=True):
    """Copy a few real clips per word into `root` in Speech Commands layout.

    Keeps the sample's split lists (restricted to the copied clips) so
    partitions stay speaker-disjoint.
    """
    words_per_label = words_per_label or {"up": 12, "down": 12, "left": 4, "right": 4, "go": 3}
    root = Path(root)
    copied = set()
    validation = set((sample_dir / "validation_list.txt").read_text().split())
    testing = set((sample_dir / "testing_list.txt").read_text().split())
    for word, count in words_per_label.items():
        (root / word).mkdir(parents=True)
        names = sorted(p.name for p in (sample_dir / word).glob("*.wav"))
        # Take clips from every partition so each one has some.
        picked = [n for n in names if f"{word}/{n}" in validation][: max(1, count // 4)]
        picked += [n for n in names if f"{word}/{n}" in testing][: max(1, count // 4)]
        picked += [n for n in names if f"{word}/{n}" not in validation | testing][: count - len(picked)]
        for name in picked:
            shutil.copy(sample_dir / word / name, root / word / name)
            copied.add(f"{word}/{name}")
    (root / "_background_noise_").mkdir()
    for noise in sorted((sample_dir / "_background_noise_").glob("*.wav"))[:2]:
        data, rate = soundfile.read(noise, dtype="int16")
        soundfile.write(root / "_background_noise_" / noise.name, data[: rate * 5], rate, subtype="PCM_16")
    if with_lists:
        (root / "validation_list.txt").write_text("\n".join(sorted(copied & validation)) + "\n")
        (root / "testing_list.txt").write_text("\n".join(sorted(copied & testing)) + "\n")
    return root


@pytest.fixture
def mini_dataset(tmp_path, sample_dir):
    return make_mini_dataset(tmp_path / "data", sample_dir)


def write_tone(path, *, seconds=1.0, rate=16000, channels=1, subtype="PCM_16", amplitude=0.5):
    t = np.arange(int(seconds * rate)) / rate
    tone = amplitude * np.sin(2 * np.pi * 440 * t)
    data = np.stack([tone] * channels, axis=1) if channels > 1 else tone
    soundfile.write(path, data, rate, subtype=subtype)
    return path
