import struct

import numpy as np
import pytest
import soundfile
from conftest import write_tone

from microkws.audio import (
    AudioError,
    check_audio,
    fit_to_length,
    read_audio,
    read_clip,
    read_pcm16_clip,
    resample,
    to_int16,
)


def test_pcm16_reads_exactly_as_decode_wav(testvectors):
    raw, rate = soundfile.read(testvectors / "yes_1000ms.wav", dtype="int16")
    audio = read_audio(testvectors / "yes_1000ms.wav")
    assert rate == 16000
    np.testing.assert_array_equal(audio, raw.astype(np.float32) / 32768)
    np.testing.assert_array_equal(to_int16(audio), raw)


@pytest.mark.parametrize("subtype", ["PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT"])
def test_sample_formats_are_scaled_to_unit_range(tmp_path, subtype):
    path = write_tone(tmp_path / f"{subtype}.wav", subtype=subtype, amplitude=0.5)
    audio = read_audio(path)
    assert audio.dtype == np.float32 and audio.shape == (16000,)
    assert abs(np.abs(audio).max() - 0.5) < 0.02


def test_stereo_is_averaged(tmp_path):
    left = np.full(16000, 0.5)
    right = np.full(16000, -0.25)
    soundfile.write(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000, subtype="PCM_16")
    audio = read_audio(tmp_path / "stereo.wav")
    np.testing.assert_allclose(audio, 0.125, atol=1e-4)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_are_resampled_to_16k(tmp_path, rate):
    path = write_tone(tmp_path / f"r{rate}.wav", rate=rate, seconds=1.0)
    audio = read_audio(path)
    assert abs(len(audio) - 16000) <= 1
    spectrum = np.abs(np.fft.rfft(audio[:16000]))
    assert abs(np.argmax(spectrum) - 440) <= 1  # the tone stays at 440 Hz


def test_resampling_removes_what_would_alias():
    rate = 44100
    t = np.arange(rate) / rate
    above_nyquist = np.sin(2 * np.pi * 10000 * t).astype(np.float32)  # above 8 kHz: must not fold to 6 kHz
    out = resample(above_nyquist, rate, 16000)
    assert np.sqrt(np.mean(out[1000:-1000] ** 2)) < 0.01


def test_fit_pads_short_clips_at_the_end(tmp_path):
    audio = read_audio(write_tone(tmp_path / "short.wav", seconds=0.2))
    fitted = fit_to_length(audio, 16000)
    assert fitted.shape == (16000,)
    np.testing.assert_array_equal(fitted[:3200], audio)
    assert not fitted[3200:].any()


def test_fit_keeps_the_loudest_second_of_long_clips():
    quiet = np.full(48000, 0.001, dtype=np.float32)
    quiet[20000:30000] = 0.5  # a "word" in the middle of 3 s
    fitted = fit_to_length(quiet, 16000)
    assert fitted.shape == (16000,)
    assert np.count_nonzero(fitted == 0.5) == 10000


def test_to_int16_saturates():
    values = np.array([-1.5, -1.0, -0.5, 0.0, 0.99999, 1.0, 2.0], dtype=np.float32)
    np.testing.assert_array_equal(to_int16(values), [-32768, -32768, -16384, 0, 32767, 32767, 32767])


def _bad_files(tmp_path):
    good = write_tone(tmp_path / "good.wav")
    data = good.read_bytes()
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "truncated.wav").write_bytes(data[:20])
    (tmp_path / "text.wav").write_text("this is not audio\n")
    soundfile.write(tmp_path / "zero_frames.wav", np.zeros(0, dtype=np.int16), 16000, subtype="PCM_16")
    return ["empty.wav", "truncated.wav", "text.wav", "zero_frames.wav"]


def test_bad_files_raise_one_line_naming_the_file(tmp_path):
    for name in _bad_files(tmp_path):
        with pytest.raises(AudioError) as caught:
            read_audio(tmp_path / name)
        message = str(caught.value)
        assert str(tmp_path / name) in message and "\n" not in message


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(AudioError, match="nothere.wav"):
        read_audio(tmp_path / "nothere.wav")


def test_a_header_beyond_memory_is_refused_before_reading(tmp_path, monkeypatch):
    import microkws.audio as audio

    path = tmp_path / "long.wav"
    soundfile.write(path, np.zeros(16000, dtype=np.int16), 16000, subtype="PCM_16")
    monkeypatch.setattr(audio, "_physical_memory", lambda: 200_000)  # a machine with 200 KB
    with pytest.raises(AudioError, match="long.wav: 0.0 hours of audio need 0.0 GiB to read, more than half"):
        read_audio(path)


def _odd_layouts(tmp_path):
    """name -> (path, whether read_clip may read it without libsndfile)."""
    noise = np.random.default_rng(0).uniform(-1, 1, 24000)
    files = {}
    for name, rate, frames, subtype, direct in (
            ("plain", 16000, 16000, "PCM_16", True), ("short", 16000, 3000, "PCM_16", True),
            ("one_frame", 16000, 1, "PCM_16", True), ("long", 16000, 24000, "PCM_16", False),
            ("r8k", 8000, 8000, "PCM_16", False), ("pcm24", 16000, 16000, "PCM_24", False),
            ("float", 16000, 16000, "FLOAT", False)):
        soundfile.write(tmp_path / f"{name}.wav", noise[:frames], rate, subtype=subtype)
        files[name] = (tmp_path / f"{name}.wav", direct)
    soundfile.write(tmp_path / "stereo.wav", np.stack([noise[:16000], noise[::-1][:16000]], 1), 16000, subtype="PCM_16")
    files["stereo"] = (tmp_path / "stereo.wav", False)
    raw = (tmp_path / "plain.wav").read_bytes()
    fmt, data = raw[12:36], raw[36:]
    with_list = b"WAVE" + fmt + b"LIST" + struct.pack("<I", 5) + b"INFOx\0" + data + b"junk\4\0\0\0abcd"
    for name, content, direct in (("list_chunk", b"RIFF" + struct.pack("<I", len(with_list)) + with_list, True),
                                  ("streamed_riff_size", raw[:4] + b"\xff\xff\xff\xff" + raw[8:], False),
                                  ("truncated", raw[:len(raw) // 2], False), ("trailing_byte", raw + b"\1", False)):
        (tmp_path / f"{name}.wav").write_bytes(content)
        files[name] = (tmp_path / f"{name}.wav", direct)
    return files


def test_read_clip_is_read_audio_fitted_bit_for_bit(tmp_path, sample_dir):
    """The direct int16 path gives what libsndfile, x / 32768 and to_int16 give; odd files go through libsndfile."""
    clips = {path.name: (path, path.parent.name != "_background_noise_")  # those are minutes long
             for path in sorted(sample_dir.glob("*/*.wav"))[::25]}
    for name, (path, direct) in {**clips, **_odd_layouts(tmp_path)}.items():
        expected = to_int16(fit_to_length(read_audio(path), 16000))
        assert (read_pcm16_clip(path, sample_rate=16000, length=16000) is not None) == direct, name
        np.testing.assert_array_equal(read_clip(path, sample_rate=16000, length=16000), expected, err_msg=name)
        check_audio(path)


def test_bad_files_fail_check_audio_and_read_clip_alike(tmp_path):
    for name in _bad_files(tmp_path):
        with pytest.raises(AudioError) as read_error:
            read_audio(tmp_path / name)
        for reader in (check_audio, lambda path: read_clip(path, sample_rate=16000, length=16000)):
            with pytest.raises(AudioError) as caught:
                reader(tmp_path / name)
            assert str(caught.value) == str(read_error.value)
