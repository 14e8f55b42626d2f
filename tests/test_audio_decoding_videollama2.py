# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Audio decoding against the original's: soundfile for audio files, ffmpeg for the audio of videos, scipy's FFT
resampling, pytorchvideo's clip sampler.

Everything decodes real files with PyAV. The references are the AV fixture (ffmpeg 4.2.2 PCM, clip ranges, the
hash of the resampled waveform), soundfile and scipy themselves (test dependencies), and files written here with
soundfile. Only the URL download is replaced (network boundary).
"""

import base64
import hashlib
import io
import json
import subprocess
import sys
import wave
from fractions import Fraction
from unittest.mock import patch

import av
import numpy as np
import pytest
import scipy.signal
import soundfile
from safetensors.torch import load_file
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging
from videollama2_test_utils import AV_VARIANT

from videollama2_hf import media_sources_videollama2
from videollama2_hf.audio_decoding_videollama2 import (
    _channel_zero,
    clip_sample_ranges,
    decode_audio_track,
    fit_to_length,
    load_audio,
    load_video_audio,
    resample_fft,
)


@pytest.fixture(scope="module")
def av_reference(fixtures_dir):
    tensors = load_file(fixtures_dir / AV_VARIANT / "reference.safetensors")
    cases = json.loads((fixtures_dir / AV_VARIANT / "reference.json").read_text())["cases"]
    return tensors, cases


def _wav_bytes(samples: np.ndarray, rate: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def _noise(num_samples: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    samples = np.random.default_rng(seed).uniform(-0.9, 0.9, size=(num_samples, channels))
    return samples[:, 0] if channels == 1 else samples


# --- resampling ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("length, num_samples", [(44100, 16000), (44101, 16000), (8000, 16000), (8001, 16001)])
def test_resample_fft_matches_scipy(length, num_samples):
    """Down- and up-sampling, with and without an unpaired Nyquist bin. Recent scipy releases compute the same
    transform with another rounding order, so they agree to float64 noise, not bit for bit."""
    waveform = _noise(length)
    expected = scipy.signal.resample(waveform, num_samples)
    np.testing.assert_allclose(resample_fft(waveform, num_samples), expected, rtol=0, atol=1e-12)


def test_load_audio_is_the_originals_waveform(media_dir, av_reference):
    """bird-twitter-car.wav (44.1 kHz, 27.35 s): the original's fbank input, 2**15 * the resampled waveform, has a
    recorded sha256. Matching it means decoding, padding and resampling are bit-identical."""
    facts = av_reference[1]["audio"]["audio"]["waveform_16k"]
    waveform = load_audio(media_dir / "bird-twitter-car.wav")
    assert waveform.dtype == np.float64 and waveform.shape == (facts["num_samples"],)
    assert hashlib.sha256((waveform * 2**15).tobytes()).hexdigest() == facts["sha256_of_fbank_input_bytes"]
    assert (waveform.min(), waveform.max()) == (facts["min"], facts["max"])


# --- audio files --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, subtype", [("WAV", "PCM_U8"), ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "PCM_32"), ("WAV", "FLOAT"),
                     ("WAV", "DOUBLE"), ("FLAC", "PCM_16"), ("FLAC", "PCM_24")]
)  # fmt: skip
def test_load_audio_reads_channel_zero_like_soundfile(fmt, subtype):
    """The original reads files with soundfile (float64) and keeps channel 0; every lossless format scales the same."""
    data = _wav_bytes(_noise(16000, channels=2), 16000, subtype, fmt)
    expected, rate = soundfile.read(io.BytesIO(data))
    waveform = load_audio(data)
    np.testing.assert_array_equal(waveform[:16000], expected[:, 0])
    assert not waveform[16000:].any() and len(waveform) == 30 * 16000


def test_load_audio_resamples_after_padding_at_the_file_rate():
    samples = _noise(22050 * 3)
    waveform = load_audio(_wav_bytes(samples, 22050))
    padded = np.pad(soundfile.read(io.BytesIO(_wav_bytes(samples, 22050)))[0], (0, 22050 * 27))
    np.testing.assert_allclose(waveform, scipy.signal.resample(padded, 480000), rtol=0, atol=1e-12)


def test_long_audio_keeps_the_centred_30_seconds():
    """The original draws a random 30 s window; the centred one is the deterministic choice made here."""
    samples = _noise(16000 * 31 + 1)
    expected = soundfile.read(io.BytesIO(_wav_bytes(samples, 16000)))[0][8000 : 8000 + 480000]
    np.testing.assert_array_equal(load_audio(_wav_bytes(samples, 16000)), expected)


@pytest.mark.parametrize(
    "fmt, subtype, rate",
    [("WAV", "PCM_16", 48000), ("WAV", "FLOAT", 22050), ("FLAC", "PCM_24", 48000), ("MP3", "MPEG_LAYER_III", 44100)],
)  # fmt: skip
def test_long_audio_window_is_that_of_a_full_decode(fmt, subtype, rate):
    """Only the centred 30 s are decoded and kept (after a seek where frames decode independently, from the start
    otherwise), and they are the samples a decode of the whole file gives: channel 0, resampled like the rest."""
    data = _wav_bytes(_noise(rate * 47 + 3, channels=2), rate, subtype, fmt)
    with av.open(io.BytesIO(data)) as container:  # the whole file, decoded in one go
        full = np.concatenate([_channel_zero(frame) for frame in container.decode(audio=0)])
    if fmt in ("WAV", "FLAC"):  # soundfile reads lossless files the same
        np.testing.assert_array_equal(full, soundfile.read(io.BytesIO(data))[0][:, 0])
    start = (len(full) - 30 * rate) // 2
    expected = full[start : start + 30 * rate]
    if rate != 16000:
        expected = scipy.signal.resample(expected, 480000)
    np.testing.assert_allclose(load_audio(data), expected, rtol=0, atol=1e-12 if rate != 16000 else 0)


def test_long_audio_memory_does_not_grow_with_its_length(tmp_path):
    """A 10-minute 48 kHz WAV costs what a 1-minute one costs (the whole file decoded to float64 would be 230 MB,
    twice, while concatenated): peak RSS of a fresh process, after the short file, then after the long one."""
    block = (_noise(48000) * 30000).astype("<i2").tobytes()  # one second of 16-bit noise
    for minutes in (1, 10):
        with wave.open(str(tmp_path / f"{minutes}min.wav"), "wb") as file:
            file.setnchannels(1), file.setsampwidth(2), file.setframerate(48000)
            for _ in range(60 * minutes):
                file.writeframesraw(block)
    script = (
        "import resource, sys; from videollama2_hf.audio_decoding_videollama2 import load_audio\n"
        "peaks = []\n"
        "for path in sys.argv[1:]:\n"
        "    assert load_audio(path).shape == (480000,)\n"
        "    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        "print(peaks[1] - peaks[0])"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "1min.wav"), str(tmp_path / "10min.wav")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    growth_mib = int(result.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux
    assert growth_mib < 50, f"peak RSS grew by {growth_mib:.0f} MiB from a 1-minute to a 10-minute file"


def test_fit_to_length():
    np.testing.assert_array_equal(fit_to_length(np.arange(5.0), 8), [0, 1, 2, 3, 4, 0, 0, 0])
    np.testing.assert_array_equal(fit_to_length(np.arange(10.0), 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(fit_to_length(np.arange(4.0), 4), [0, 1, 2, 3])


def test_sources_path_bytes_file_object_and_url(tmp_path):
    data = _wav_bytes(_noise(1600), 16000)
    path = tmp_path / "clip.wav"
    path.write_bytes(data)
    expected = load_audio(path)
    np.testing.assert_array_equal(load_audio(str(path)), expected)
    np.testing.assert_array_equal(load_audio(data), expected)
    with open(path, "rb") as file:
        np.testing.assert_array_equal(load_audio(file), expected)
    # The network boundary: the download itself is replaced by the file's bytes.
    with patch("videollama2_hf.audio_decoding_videollama2.download", return_value=data) as download:
        np.testing.assert_array_equal(load_audio("https://example.com/clip.wav"), expected)
    download.assert_called_once_with("https://example.com/clip.wav")


# --- the audio track of a video -----------------------------------------------------------------------------------


def test_decoded_track_matches_ffmpeg(media_dir, av_reference):
    """The original ran ffmpeg 4.2.2 (`-ac 1 -ar 16000 -f s16le`); PyAV's FFmpeg resamples with the same filter but
    rounds 3 of the 155295 samples of sample_demo_1.mp4 (values within 1e-4 of x.5) to the other integer."""
    expected = av_reference[0]["av.audio_decoded_int16"].numpy()
    pcm = decode_audio_track(media_dir / "sample_demo_1.mp4")
    assert pcm.dtype == np.int16 and pcm.shape == expected.shape
    difference = np.abs(pcm.astype(np.int32) - expected)
    assert difference.max() <= 1 and np.count_nonzero(difference) <= 5


def test_clip_ranges_match_the_original(av_reference):
    tensors, cases = av_reference
    facts = cases["av"]["audio"]
    ranges = clip_sample_ranges(facts["decoded_num_samples"])
    assert ranges == [tuple(pair) for pair in tensors["av.audio_clip_sample_ranges"].tolist()]
    starts = [Fraction(start) for start, _ in facts["clip_timepoints_s"]]
    assert ranges == [(int(start * 16000), int((start + 2) * 16000)) for start in starts]


def test_clip_ranges_of_short_and_exact_tracks():
    assert clip_sample_ranges(16000 * 10) == [(16000 * k, 16000 * k + 32000) for k in range(8)]
    assert clip_sample_ranges(20000) == [(0, 32000)] * 8  # shorter than a clip: heard 8 times


def test_video_audio_is_the_clips_concatenated_and_padded(media_dir, av_reference):
    pcm = decode_audio_track(media_dir / "sample_demo_1.mp4")
    waveform = load_video_audio(media_dir / "sample_demo_1.mp4")
    ranges = av_reference[0]["av.audio_clip_sample_ranges"].tolist()
    expected = np.concatenate([pcm[start:end] for start, end in ranges]).astype(np.float32) / 32768
    assert waveform.dtype == np.float32 and waveform.shape == (480000,)
    np.testing.assert_array_equal(waveform[: len(expected)], expected)
    assert not waveform[len(expected) :].any()


def test_long_video_hears_16_seconds_spread_over_the_track(media_dir):
    """00003491.mp4: 60 s, MP3 stereo. Clips start every (60 - 2) / 8 s; only 16 s are heard."""
    pcm = decode_audio_track(media_dir / "00003491.mp4")
    assert abs(len(pcm) - 60 * 16000) < 16000 // 10
    waveform = load_video_audio(media_dir / "00003491.mp4")
    starts = [start for start, _ in clip_sample_ranges(len(pcm))]
    assert starts[1] == int(Fraction(len(pcm) / 16000 - 2) / 8 * 16000)
    np.testing.assert_array_equal(waveform[32000:64000], pcm[starts[1] : starts[1] + 32000] / np.float32(32768))
    assert not waveform[256000:].any()


# --- errors -------------------------------------------------------------------------------------------------------


def test_video_without_audio_track_is_an_error_not_silence(media_dir):
    with pytest.raises(ValueError, match="has no audio stream.*without its audio"):
        load_video_audio(media_dir / "1034346401.mp4")
    with pytest.raises(ValueError, match="has no audio stream.*Pass an audio file"):
        load_audio(media_dir / "extreme_ironing.jpg")


def test_corrupt_and_empty_files(tmp_path):
    with pytest.raises(ValueError, match=r"^Could not decode the audio of the audio bytes .*corrupt") as error:
        load_audio(b"RIFF\x00\x00\x00\x00WAVEnot really a wav file at all")
    assert "Errno" not in str(error.value)  # FFmpeg's reason in words, without its error number
    with pytest.raises(ValueError, match="without any sample"):
        load_audio(_wav_bytes(np.zeros(0), 16000))
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.wav is empty \(0 bytes\): there is no audio in it") as error:
        load_audio(empty)
    assert "Errno" not in str(error.value)
    with pytest.raises(ValueError, match=r"^the video bytes is empty \(0 bytes\): there is no sound in it"):
        load_video_audio(b"")


def test_data_uris_and_file_urls_read_like_the_path(tmp_path, monkeypatch):
    data = _wav_bytes(_noise(16000 * 2, channels=2), 22050)
    path = tmp_path / "a folder é" / "clip.wav"
    path.parent.mkdir()
    path.write_bytes(data)
    expected = load_audio(path)
    uri = f"data:audio/wav;base64,{base64.b64encode(data).decode()}"
    for source in (path.as_uri(), uri):
        np.testing.assert_array_equal(load_audio(source), expected)
    monkeypatch.setattr(media_sources_videollama2, "MAX_MEDIA_BYTES", len(data) - 1)
    with pytest.raises(ValueError, match=r"^the audio data: URI \(audio/wav\) holds .* over the .* limit"):
        load_audio(uri)


def test_truncated_file_warns_or_fails(media_dir):
    """An MP3 cut in half declares 4 s but holds 2 s: decoded with a warning. A cut MP4 cannot be decoded at all."""
    data = _wav_bytes(_noise(16000 * 4), 16000, "MPEG_LAYER_III", "MP3")
    with CaptureLogger(logging.get_logger("videollama2_hf.audio_decoding_videollama2")) as captured:
        waveform = load_audio(data[: len(data) // 2])
    assert "declares 64000 audio samples but only" in captured.out and "truncated" in captured.out
    assert 16000 < np.count_nonzero(waveform) < 16000 * 3
    video = (media_dir / "sample_demo_1.mp4").read_bytes()
    with pytest.raises(ValueError, match=r"^Could not decode the audio of the video bytes .*truncated"):
        decode_audio_track(video[: len(video) // 2])


def test_missing_file_and_unsupported_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="No audio or video file at"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(TypeError, match="Cannot read audio from ndarray"):
        load_video_audio(np.zeros(10))
