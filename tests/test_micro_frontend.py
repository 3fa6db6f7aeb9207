"""The micro frontend is bit-exact with TFLM's golden values and with TensorFlow's op.

TensorFlow's `audio_microfrontend` op is the oracle: uint16 outputs must be equal,
value for value, on real speech, the micro_speech test vectors, hostile synthetic
signals and non-default option sets, for both code paths of the C extension.
"""

import json
import math

import numpy as np
import pytest
import soundfile

from microkws.audio import to_int16
from microkws.errors import UserError
from microkws.features import (
    FeatureConfig,
    MicroFrontend,
    compute_features,
    micro_features,
    to_int8,
    to_training_scale,
)
from microkws.features import _frontend
from microkws.features.config import MICRO_FRONTEND_OPTIONS
from microkws.features.micro import (
    INT8_INPUT_SCALE,
    TRAINING_SCALE,
    _plan,
    snap_to_device_grid,
    training_values,
)

SPEECH_CLIPS = 130  # real recordings checked against the op, spread over all words
RNG_SEED = 1234

# Non-default option sets, each checked on speech and synthetic clips.
OPTION_SETS = {
    "window 25 ms, stride 10 ms, 32 channels": FeatureConfig(window_size_ms=25, window_stride_ms=10, feature_bin_count=32),
    "20 channels": FeatureConfig(feature_bin_count=20),
    "no PCAN": FeatureConfig(enable_pcan=False),
    "no log": FeatureConfig(enable_log=False),
    "no PCAN, no log": FeatureConfig(enable_pcan=False, enable_log=False),
    "smoothing and band limits": FeatureConfig(
        smoothing_bits=8, even_smoothing=0.1, odd_smoothing=0.3, min_signal_remaining=0.2,
        lower_band_limit=300.0, upper_band_limit=6000.0,
    ),
    "PCAN strength, offset, gain bits, scale shift": FeatureConfig(
        pcan_strength=0.5, pcan_offset=20.0, gain_bits=18, scale_shift=8,
    ),
    "8 kHz": FeatureConfig(sample_rate=8000, upper_band_limit=3800.0, lower_band_limit=100.0),
    "64 ms window (1024-point FFT), 80 channels": FeatureConfig(
        window_size_ms=64, window_stride_ms=16, feature_bin_count=80, lower_band_limit=20.0,
    ),
    "10 ms window at 8 kHz (128-point FFT)": FeatureConfig(
        sample_rate=8000, window_size_ms=10, window_stride_ms=5, feature_bin_count=16, upper_band_limit=3900.0,
    ),
}


# One non-default value per frontend option, each one changing the features of speech.
ALTERED_OPTIONS = {
    "lower_band_limit": 300.0, "upper_band_limit": 6000.0, "smoothing_bits": 8, "even_smoothing": 0.1,
    "odd_smoothing": 0.3, "min_signal_remaining": 0.2, "enable_pcan": False, "pcan_strength": 0.5,
    "pcan_offset": 20.0, "gain_bits": 18, "enable_log": False, "scale_shift": 8,
}


@pytest.fixture(scope="module")
def op():
    """TensorFlow's op as op(int16 clip, config) -> uint16 [frames, channels] (integer milliseconds)."""
    tf = pytest.importorskip("tensorflow")
    ops = pytest.importorskip("tensorflow.lite.experimental.microfrontend.python.ops.audio_microfrontend_op")

    def features(audio, config=FeatureConfig()):
        assert config.window_size_ms == int(config.window_size_ms)
        assert config.window_stride_ms == int(config.window_stride_ms)
        return ops.audio_microfrontend(
            tf.constant(np.asarray(audio, np.int16)),
            sample_rate=config.sample_rate,
            window_size=int(config.window_size_ms),
            window_step=int(config.window_stride_ms),
            num_channels=config.feature_bin_count,
            **config.frontend_options(),
            out_scale=1,
            out_type=tf.uint16,
        ).numpy()

    return features


def assert_matches_op(op, clips, config=FeatureConfig(), names=None, features=None):
    """Our uint16 features of equal-length `clips` equal the op's, clip by clip."""
    clips = np.stack(clips)
    ours = micro_features(clips, config) if features is None else features
    assert ours.dtype == np.uint16
    names = names or [f"clip {i}" for i in range(len(clips))]
    for name, clip, got in zip(names, clips, ours):
        expected = op(clip, config)
        assert got.shape == expected.shape, name
        differing = int((got != expected).sum())
        assert differing == 0, f"{name}: {differing} of {expected.size} values differ from the TF op"


def read_int16(path):
    audio, _ = soundfile.read(path, dtype="int16")
    return audio


def fit(audio, samples):
    """Zero-pad or trim to `samples`."""
    return np.pad(audio, (0, max(0, samples - len(audio))))[:samples]


def synthetic_clips(samples=16000, rate=16000):
    """Signals that stress the fixed-point arithmetic: silence, full scale, clipping, DC, sweeps."""
    rng = np.random.default_rng(RNG_SEED)
    t = np.arange(samples)
    clips = {"silence": np.zeros(samples)}
    for level in (1, 30, 1000, 8000, 30000, 200000):  # the last one clips hard
        clips[f"white noise, rms {level}"] = rng.standard_normal(samples) * level
    for value in (32767, -32768, 1, -1, 12345):
        clips[f"constant {value}"] = np.full(samples, value)
    clips["clipped speech-like burst"] = np.sin(2 * np.pi * 300 * t / rate) * 80000 * (t > samples // 3)
    clips["square wave, full scale, 500 Hz"] = np.where((t // (rate // 1000)) % 2 == 0, 32767, -32768)
    clips["alternating +32767 / -32768 (Nyquist)"] = np.where(t % 2 == 0, 32767, -32768)
    clips["random full-scale +-"] = rng.choice([-32768, 32767], samples)
    clips["uniform int16"] = rng.integers(-32768, 32768, samples)
    clips["DC offset 20000 plus noise"] = 20000 + rng.standard_normal(samples) * 50
    clips["DC offset -30000 plus tone"] = -30000 + 2000 * np.sin(2 * np.pi * 1000 * t / rate)
    for low, high, amplitude in ((20, 7900, 32767), (7900, 20, 10000), (100, 4000, 300)):
        phase = 2 * np.pi * np.cumsum(np.linspace(low, high, samples)) / rate
        clips[f"sine sweep {low}-{high} Hz, amplitude {amplitude}"] = amplitude * np.sin(phase)
    for frequency in (125, 1000, 7500):
        clips[f"full-scale sine {frequency} Hz"] = 32767 * np.sin(2 * np.pi * frequency * t / rate)
    impulses = np.zeros(samples)
    impulses[:: rate // 7] = 32767
    clips["impulses +32767"] = impulses
    impulses = np.zeros(samples)
    impulses[rate // 3 :: rate // 5] = -32768
    clips["impulses -32768"] = impulses
    clips["single sample -32768 in silence"] = np.where(t == samples // 2, -32768, 0)
    clips["quiet: values in [-2, 2]"] = rng.integers(-2, 3, samples)
    clips["quiet: noise rms 0.6"] = rng.standard_normal(samples) * 0.6
    clips["quiet tone, amplitude 3"] = 3 * np.sin(2 * np.pi * 440 * t / rate)
    clips["loud then silent"] = np.where(t < samples // 2, rng.standard_normal(samples) * 20000, 0)
    return {name: np.clip(np.round(x), -32768, 32767).astype(np.int16) for name, x in clips.items()}


@pytest.fixture(scope="module")
def golden(testvectors):
    return json.loads((testvectors / "golden.json").read_text())


@pytest.fixture(scope="module")
def speech(sample_dir):
    """SPEECH_CLIPS one-second clips, taken from every word in turn, padded to 16,000 samples."""
    words = [sorted(d.glob("*.wav")) for d in sorted(sample_dir.iterdir()) if d.is_dir() and d.name[0] != "_"]
    picked = [clip for rank in range(max(map(len, words))) for clip in (w[rank] for w in words if rank < len(w))]
    picked = picked[:SPEECH_CLIPS]
    assert len(picked) == SPEECH_CLIPS and len({p.parent.name for p in picked}) >= 30
    return [p.relative_to(sample_dir).as_posix() for p in picked], [fit(read_int16(p), 16000) for p in picked]


# ---- golden values of TFLM's micro_speech example --------------------------------------------


@pytest.mark.parametrize("clip", ["yes_1000ms.wav", "no_1000ms.wav"])
def test_golden_49x40_features(testvectors, golden, clip):
    features = to_int8(micro_features(read_int16(testvectors / clip)))
    expected = np.array(golden["clips"][clip]["int8_features_49x40"], np.int8).reshape(49, 40)
    assert features.shape == (49, 40)
    assert int((features != expected).sum()) == 0


@pytest.mark.parametrize("clip", ["yes_30ms.wav", "no_30ms.wav"])
def test_golden_streaming_slice(testvectors, golden, clip):
    expected = golden["streaming_slices"][clip]
    frontend = MicroFrontend()
    frontend.noise_estimate = expected["noise_estimate_presets"]
    audio = read_int16(testvectors / clip)
    assert len(audio) == 480
    features = to_int8(frontend.process(audio))
    assert features.shape == (1, 40)
    np.testing.assert_array_equal(features[0], np.array(expected["int8_features_40"], np.int8))


# ---- bit-exact with TensorFlow's op ----------------------------------------------------------


def test_matches_tf_op_on_speech(op, speech):
    names, clips = speech
    assert_matches_op(op, clips, names=names)


def test_matches_tf_op_on_test_vector_wavs(op, testvectors):
    for path in sorted(testvectors.glob("*.wav")):
        audio = read_int16(path)
        assert_matches_op(op, [audio], names=[path.name])


def test_matches_tf_op_on_synthetic_signals(op):
    clips = synthetic_clips()
    assert len(clips) >= 30
    assert_matches_op(op, list(clips.values()), names=list(clips))


@pytest.mark.parametrize("name", list(OPTION_SETS))
def test_matches_tf_op_with_options(op, name, speech):
    config = OPTION_SETS[name]
    rate = config.sample_rate
    _, speech_clips = speech
    synthetic = synthetic_clips(rate, rate)
    picks = ["white noise, rms 8000", "random full-scale +-", "quiet: noise rms 0.6", "sine sweep 20-7900 Hz, amplitude 32767"]
    # 8 kHz: every other sample of the 16 kHz speech is speech-like enough.
    clips = [c[:: 16000 // rate][:rate] for c in speech_clips[::40]] + [synthetic[p] for p in picks]
    assert_matches_op(op, clips, config, names=[f"{name}: {i}" for i in range(len(clips))])


def test_the_extension_names_the_frontend_options():
    """MICRO_FRONTEND_OPTIONS comes from the extension's keyword table: same names, same order, as before."""
    assert MICRO_FRONTEND_OPTIONS == (
        "lower_band_limit", "upper_band_limit", "smoothing_bits", "even_smoothing", "odd_smoothing",
        "min_signal_remaining", "enable_pcan", "pcan_strength", "pcan_offset", "gain_bits", "enable_log",
        "scale_shift",
    )
    assert tuple(name for name, _ in _frontend.PLAN_OPTIONS) == MICRO_FRONTEND_OPTIONS
    fields = FeatureConfig.__dataclass_fields__
    for name, kind in _frontend.PLAN_OPTIONS:
        assert fields[name].type.__name__ == kind, name
    assert set(ALTERED_OPTIONS) == set(MICRO_FRONTEND_OPTIONS)


@pytest.mark.parametrize("name", MICRO_FRONTEND_OPTIONS)
def test_every_option_reaches_the_plan(op, speech, name):
    """Changing one FeatureConfig option changes the features, to what the op gives with it."""
    _, speech_clips = speech
    clips = np.stack(speech_clips[::26])
    config = FeatureConfig(**{name: ALTERED_OPTIONS[name]})
    altered = micro_features(clips, config)
    assert altered.shape != micro_features(clips).shape or (altered != micro_features(clips)).any()
    assert_matches_op(op, list(clips), config, names=[f"{name}: {i}" for i in range(len(clips))], features=altered)


@pytest.mark.parametrize("samples", [479, 480, 481, 799, 800, 15999, 16100, 23456])
def test_matches_tf_op_when_the_last_window_is_not_full(op, speech, samples):
    _, clips = speech
    audio = np.concatenate(clips[:2])[:samples]
    assert_matches_op(op, [audio], names=[f"{samples} samples"])


def test_portable_code_path_matches_tf_op(op, speech):
    """The plain-C path (machines without AVX2) is exact too, also where the AVX2 one is used."""
    _, speech_clips = speech
    for name, config in [("defaults", FeatureConfig())] + list(OPTION_SETS.items())[::3]:
        plan = portable_plan(config)
        rate = config.sample_rate
        synthetic = synthetic_clips(rate, rate)
        clips = np.stack([c[:: 16000 // rate][:rate] for c in speech_clips[::26]] + list(synthetic.values())[::3])
        features = np.zeros((len(clips), plan.frames(clips.shape[1]), plan.num_channels), np.uint16)
        plan.run(clips, features, np.zeros((len(clips), plan.num_channels), np.uint32))
        assert_matches_op(op, list(clips), config, names=[f"portable, {name}: {i}" for i in range(len(clips))], features=features)


def portable_plan(config):
    fast = _plan(config)
    plan = _frontend.Plan(
        sample_rate=config.sample_rate, window_size=fast.window_size, window_step=fast.window_step,
        num_channels=fast.num_channels, lower_band_limit=config.lower_band_limit,
        upper_band_limit=config.upper_band_limit, smoothing_bits=config.smoothing_bits,
        even_smoothing=config.even_smoothing, odd_smoothing=config.odd_smoothing,
        min_signal_remaining=config.min_signal_remaining, enable_pcan=config.enable_pcan,
        pcan_strength=config.pcan_strength, pcan_offset=config.pcan_offset, gain_bits=config.gain_bits,
        enable_log=config.enable_log, scale_shift=config.scale_shift, simd=False,
    )
    assert plan.simd == "portable"
    return plan


@pytest.mark.parametrize("config", [FeatureConfig(), OPTION_SETS["window 25 ms, stride 10 ms, 32 channels"]])
def test_streaming_in_random_chunks_equals_one_op_call(op, speech, config):
    _, clips = speech
    rng = np.random.default_rng(RNG_SEED)
    noise = (rng.standard_normal(7001) * 500).astype(np.int16)
    recording = np.concatenate([clips[3], noise, clips[50], clips[100][:9999]])
    expected = op(recording, config)

    frontend = MicroFrontend(config)
    pieces, start = [], 0
    while start < len(recording):
        size = int(rng.choice([0, 1, 7, 160, 320, 479, 480, 481, 1000, 4000]))
        pieces.append(frontend.process(recording[start : start + size]))
        start += size
    streamed = np.concatenate(pieces)
    assert streamed.shape == expected.shape
    assert int((streamed != expected).sum()) == 0
    assert frontend.pending_samples < _plan(config).window_size


def op_square_root(value):
    """The op's integer square root: rounded to nearest, but stopping at 0xFFFF below 2**32
    and at 0xFFFFFFFF above (checked against the op's FilterbankSqrt on these values)."""
    root = math.isqrt(value)
    cap = 0xFFFF if value < 2**32 else 0xFFFFFFFF
    return root + 1 if value - root * root > root and root != cap else root


@pytest.mark.parametrize("simd", [False, True], ids=["portable", "avx2"])
def test_square_root_at_edge_values(simd):
    """Filterbank sums reach these only rarely, so they are checked one by one."""
    if simd and _plan(FeatureConfig()).simd != "avx2":
        pytest.skip("this CPU has no AVX2")
    values = {0, 1, 2, 3, 2**32 - 1, 2**32, 2**32 + 1, 4294901760, 4294901761, 2**52 - 1, 2**52, 2**52 + 1,
              2**53 + 1, 2**63 - 1, 2**63, 2**64 - 2, 2**64 - 1}
    for root in (2, 255, 4095, 65534, 65535, 65536, 2**26 - 1, 2**26, 3037000499, 2**32 - 2, 2**32 - 1):
        values |= {root * root + d for d in (-1, 0, 1, root - 1, root, root + 1)}
    rng = np.random.default_rng(RNG_SEED)
    for bits in range(1, 65):
        values |= {int(v) >> (64 - bits) for v in rng.integers(0, 2**64 - 1, 50, dtype=np.uint64, endpoint=True)}
    values = sorted(v for v in values if 0 <= v < 2**64)
    roots = np.zeros(len(values), np.uint32)
    _frontend._sqrt_round(np.array(values, np.uint64), roots, simd)
    np.testing.assert_array_equal(roots, [op_square_root(v) for v in values])


# ---- the Python API --------------------------------------------------------------------------


def test_batch_equals_clip_by_clip_whatever_the_threads(speech):
    _, clips = speech
    batch = np.stack(clips[:40])
    one_thread = micro_features(batch, threads=1)
    np.testing.assert_array_equal(micro_features(batch, threads=2), one_thread)
    np.testing.assert_array_equal(micro_features(batch, threads=7), one_thread)
    for clip, features in zip(batch[::9], one_thread[::9]):
        np.testing.assert_array_equal(micro_features(clip), features)
    assert one_thread.shape == (40, 49, 40)


def test_clips_shorter_than_a_window_give_no_frames():
    assert micro_features(np.zeros(479, np.int16)).shape == (0, 40)
    assert micro_features(np.zeros((3, 100), np.int16)).shape == (3, 0, 40)
    assert micro_features(np.zeros((0, 16000), np.int16)).shape == (0, 49, 40)
    frontend = MicroFrontend()
    assert frontend.process(np.zeros(479, np.int16)).shape == (0, 40)
    assert frontend.process(np.zeros(1, np.int16)).shape == (1, 40)


def test_noise_estimate_is_the_state_carried_between_calls(speech):
    _, clips = speech
    frontend = MicroFrontend()
    first = frontend.process(clips[0])
    state = frontend.noise_estimate
    assert state.dtype == np.uint32 and state.shape == (40,) and state.any()
    continued = frontend.process(clips[1])

    other = MicroFrontend()
    other.process(clips[7][:1234])  # some state and some buffered samples, then forget them
    other.reset()
    assert other.pending_samples == 0 and not other.noise_estimate.any()
    np.testing.assert_array_equal(other.process(clips[0]), first)
    np.testing.assert_array_equal(other.noise_estimate, state)
    np.testing.assert_array_equal(other.process(clips[1]), continued)

    with pytest.raises(ValueError):
        frontend.noise_estimate = np.zeros(39, np.uint32)
    with pytest.raises(ValueError):
        frontend.noise_estimate = np.full(40, -1)


def test_input_checks():
    with pytest.raises(TypeError, match="int16"):
        micro_features(np.zeros(16000, np.float32))
    with pytest.raises(ValueError):
        micro_features(np.zeros((2, 2, 16000), np.int16))
    with pytest.raises(TypeError):
        MicroFrontend().process(np.zeros(480, np.int32))
    # Accepted by FeatureConfig, but the filterbank would need a bin past Nyquist (the op fails too).
    with pytest.raises(UserError, match="upper_band_limit"):
        micro_features(np.zeros(16000, np.int16), FeatureConfig(upper_band_limit=8000.0))


def test_to_int8_edge_values():
    values = np.arange(65536, dtype=np.uint16)
    reference = np.array([min(127, max(-128, (v * 256 + 333) // 666 - 128)) for v in range(65536)])
    got = to_int8(values)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, reference)
    pairs = {0: -128, 1: -128, 2: -127, 333: 0, 662: 126, 663: 127, 65535: 127}
    np.testing.assert_array_equal(to_int8(np.array(list(pairs), np.uint16)), list(pairs.values()))
    assert to_int8(np.zeros((2, 49, 40), np.uint16)).shape == (2, 49, 40)
    with pytest.raises(TypeError):
        to_int8(np.zeros(3, np.float32))


def test_to_training_scale():
    scaled = to_training_scale(np.array([0, 256, 666, 65535], np.uint16))
    assert scaled.dtype == np.float32
    np.testing.assert_array_equal(scaled, np.float32([0.0, 10.0, 666 * 10 / 256, 65535 * 10 / 256]))


@pytest.mark.parametrize("device_grid", [False, True])
def test_training_values_are_the_separate_steps_bit_for_bit(device_grid):
    every = np.arange(1 << 16, dtype=np.uint16).reshape(64, 32, 32)
    # The separate steps as numpy expressions, each a new array.
    expected = every.astype(np.float32) * np.float32(TRAINING_SCALE)
    if device_grid:
        levels = np.clip(np.floor(expected / INT8_INPUT_SCALE + 0.5), 0, 255)
        expected = (levels * INT8_INPUT_SCALE).astype(np.float32)
    np.testing.assert_array_equal(to_training_scale(every), every.astype(np.float32) * np.float32(TRAINING_SCALE))
    if device_grid:
        np.testing.assert_array_equal(snap_to_device_grid(to_training_scale(every)), expected)
    out = np.full(every.shape, np.nan, np.float32)
    assert training_values(every, device_grid=device_grid, out=out) is out
    np.testing.assert_array_equal(out.view(np.uint32), expected.view(np.uint32))


def test_compute_features_skips_frames_and_writes_into_out(speech):
    clips = np.stack(speech[1][:6])
    config = FeatureConfig()
    whole = snap_to_device_grid(to_training_scale(micro_features(clips, config)))
    out = np.empty((6, config.spectrogram_length - 3, config.feature_bin_count), np.float32)
    assert compute_features(clips, config, device_grid=True, skip_frames=3, out=out) is out
    np.testing.assert_array_equal(out, whole[:, 3:])
    np.testing.assert_array_equal(compute_features(clips, config), to_training_scale(micro_features(clips, config)))


def test_audio_to_int16_edge_values():
    cases = {
        0.0: 0,
        1.0: 32767,  # the original wrapped this to -32768; saturating keeps the sign
        -1.0: -32768,
        0.5: 16384,
        -0.5: -16384,
        32767 / 32768: 32767,
        0.99999: 32767,  # trunc(32767.67)
        -0.99999: -32767,  # trunc toward zero
        0.4 / 32768: 0,
        -0.4 / 32768: 0,
        -1.6 / 32768: -1,
        1.5: 32767,
        -2.0: -32768,
        np.inf: 32767,
        -np.inf: -32768,
    }
    for dtype in (np.float64, np.float32):
        got = to_int16(np.array(list(cases), dtype))
        assert got.dtype == np.int16
        np.testing.assert_array_equal(got, list(cases.values()), err_msg=str(dtype))
    assert to_int16(np.zeros((3, 5))).shape == (3, 5)
    with pytest.raises(ValueError, match="NaN"):
        to_int16(np.array([0.0, np.nan]))
    with pytest.raises(TypeError):
        to_int16(np.zeros(4, np.int16))
