# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Reading audio for VideoLLaMA2.1-AV with PyAV, the way the original prepares it for its filterbank.

* Audio files (`load_audio`): the original's soundfile path. Samples as float64 in [-1, 1) (the same scaling
  soundfile applies), channel 0 of multichannel files, zero-padded to 30 s at the file's rate, then resampled to
  16 kHz with the FFT method of `scipy.signal.resample` (what `librosa.resample(res_type="fft")` calls).
* The audio track of a video (`load_video_audio`): the original's ffmpeg path, `-ac 1 -ar 16000 -f s16le` (FFmpeg's
  resampler through PyAV), then 8 clips of 2 s spread evenly over the track, concatenated and zero-padded to 30 s.

Long audio: the original cuts a random 30 s window out of longer files. Here the window is the centred one (the
average of the original's draws), so the same file always gives the same features. Only that window is kept: a first
pass counts the samples (decoding and dropping them), a second decodes the window, after a seek for formats whose
frames decode independently (PCM WAV, FLAC), from the start for the others, so that its samples are those a full
decode gives, and memory does not grow with the file's length. Videos never need it: their 8 clips of 2 s make 16 s.

A video without an audio track, and files that are empty, corrupt or in a format FFmpeg cannot decode, raise a
one-line `ValueError`; a truncated file is decoded as far as FFmpeg can, with a warning where the container declares
a longer duration. The original silently used 30 s of zeros when ffmpeg failed, which makes the model describe a
silence nobody asked about.
"""

import os
from contextlib import contextmanager
from fractions import Fraction

import numpy as np
from transformers.utils import logging

from .media_sources_videollama2 import MediaNotFoundError, check_not_empty, download, is_video_source, media_source
from .token_counts_videollama2 import AUDIO_CLIP_SECONDS, AUDIO_SAMPLING_RATE
from .video_decoding_videollama2 import ffmpeg_reason


logger = logging.get_logger(__name__)

VIDEO_CLIP_DURATION_S = 2
VIDEO_NUM_CLIPS = 8

# What soundfile divides each sample format by to read it as float64 (24-bit PCM decodes into the top bits of s32).
# These are all the sample formats FFmpeg decodes to.
_SAMPLE_SCALE = {"u8": 128.0, "s16": 32768.0, "s32": 2.0**31, "s64": 2.0**63, "flt": 1.0, "dbl": 1.0}

# Codecs whose frames decode independently of the ones before: after a seek, they give the samples a decode from the
# start gives, so the window of a long file can be sought. Others (MP3, AAC, Vorbis, ...) carry state across frames.
_INDEPENDENT_FRAME_CODECS = ("pcm_", "flac", "alac", "wavpack", "tta")


def resample_fft(waveform: np.ndarray, num_samples: int) -> np.ndarray:
    """`scipy.signal.resample(waveform, num_samples)` for real 1-D input, bit for bit as scipy computed it up to
    at least release 1.15 (the one the original's librosa called): keep the one-sided spectrum up to the smaller
    Nyquist frequency, fold or split the unpaired Nyquist bin, inverse-transform, scale by `num_samples / len`."""
    length = len(waveform)
    spectrum = np.fft.rfft(waveform)
    kept = min(num_samples, length)
    resized = np.zeros(num_samples // 2 + 1, dtype=spectrum.dtype)
    resized[: kept // 2 + 1] = spectrum[: kept // 2 + 1]
    if kept % 2 == 0 and num_samples != length:
        resized[kept // 2] *= 2.0 if num_samples < length else 0.5
    resampled = np.fft.irfft(resized, num_samples)
    resampled *= float(num_samples) / float(length)
    return resampled


def fit_to_length(waveform: np.ndarray, num_samples: int) -> np.ndarray:
    """Zero-pad at the end to `num_samples`, or keep the centred `num_samples` of longer audio."""
    if len(waveform) > num_samples:
        start = (len(waveform) - num_samples) // 2
        logger.info(
            f"Audio of {len(waveform)} samples is longer than {num_samples}: keeping the centred {num_samples} "
            f"(from sample {start})."
        )
        return waveform[start : start + num_samples]
    return np.pad(waveform, (0, num_samples - len(waveform)))


def clip_sample_ranges(
    num_samples: int,
    sampling_rate: int = AUDIO_SAMPLING_RATE,
    clip_duration: int = VIDEO_CLIP_DURATION_S,
    num_clips: int = VIDEO_NUM_CLIPS,
) -> list[tuple[int, int]]:
    """`[start, end)` sample ranges of the clips the original hears in a video's audio track: clip `k` starts at
    `k * max(D - clip_duration, 0) / num_clips` seconds, `D = num_samples / sampling_rate` (a float, as the original
    computes it, then exact fractions, as pytorchvideo's ConstantClipsPerVideoSampler does). Short tracks give
    overlapping clips, and tracks shorter than one clip are heard `num_clips` times."""
    latest_start = Fraction(max(num_samples / sampling_rate - clip_duration, 0))
    ranges = []
    for index in range(num_clips):
        start = latest_start / num_clips * index
        ranges.append((int(start * sampling_rate), int((start + clip_duration) * sampling_rate)))
    return ranges


def _import_av():
    try:
        import av
    except ImportError as error:
        raise ImportError("Decoding audio needs PyAV: `pip install av`.") from error
    return av


def _source(source, what: str) -> tuple[object, str]:
    """`(something av.open reads, its name for messages)` of a path, URL, `data:` URI, bytes or file object."""
    if not is_video_source(source):
        raise TypeError(
            f"Cannot read audio from {type(source).__name__}; pass a path, URL, bytes or file object (or give the "
            "feature extractor a waveform array)."
        )
    openable, name = media_source(source, what, download)  # this module's `download`, which tests can replace
    if isinstance(openable, str) and not os.path.isfile(openable):  # a local path
        raise MediaNotFoundError(f"No audio or video file at {openable}. Check the path.")
    check_not_empty(openable, name, what if what == "audio" else "sound")
    return openable, name


@contextmanager
def _open_audio_stream(source, what: str, name: str | None = None):
    """The container, its audio stream and the source's name; FFmpeg errors become one-line `ValueError`s. With
    `name`, `source` is what `_source` returned. A file object is read from where it stands."""
    av = _import_av()
    if name is None:
        source, name = _source(source, what)
    try:
        with av.open(source) as container:
            stream = container.streams.best("audio")
            if stream is None:
                raise ValueError(
                    f"{name} has no audio stream, so there is nothing to hear. "
                    + (
                        "Ask about the video without its audio, or pass a video that has sound."
                        if what == "video"
                        else "Pass an audio file (WAV, FLAC, MP3, ...) or a video with sound."
                    )
                )
            yield container, stream, name
    except av.FFmpegError as error:
        raise ValueError(
            f"Could not decode the audio of {name} ({ffmpeg_reason(error)}): the file is corrupt, truncated or not "
            "in a format FFmpeg can read. Re-encode it (e.g. to 16-bit WAV) or pass the waveform as an array."
        ) from error


def check_audio_track(source, what: str = "audio") -> None:
    """Raise the one-line error decoding would raise when `source` (a `what`: "audio" file or "video") has no audio
    stream FFmpeg can open, without decoding it: a cheap check before a model loads."""
    with _open_audio_stream(source, what):
        pass


def _check_length(stream, num_samples: int, rate: int, name: str) -> None:
    if num_samples == 0:
        raise ValueError(f"{name} has an audio stream without any sample (an empty or truncated file?).")
    if stream.duration is not None and stream.time_base is not None:
        declared = int(stream.duration * stream.time_base * rate)
        if num_samples < declared - rate // 10:
            logger.warning(
                f"{name}: the container declares {declared} audio samples but only {num_samples} could be decoded "
                "(a truncated file?); using those."
            )


def _channel_zero(frame) -> np.ndarray:
    """Channel 0 of a decoded frame as float64, scaled like soundfile (integers to [-1, 1))."""
    sample_format = frame.format.name.rstrip("p")  # planar or packed, the scale is the same
    samples = frame.to_ndarray()
    channel = samples[0] if frame.format.is_planar else samples.reshape(-1, len(frame.layout.channels))[:, 0]
    channel = channel.astype(np.float64)
    if sample_format == "u8":
        channel -= 128.0
    return channel / _SAMPLE_SCALE[sample_format]


def _frames(container, stream, rate: int, name: str):
    """The decoded frames of `stream`, all at `rate`."""
    for frame in container.decode(stream):
        if frame.sample_rate != rate:
            raise ValueError(
                f"{name} changes its sample rate mid-stream ({rate} -> {frame.sample_rate} Hz). Re-encode it at one "
                "rate."
            )
        yield frame


def _first_sample(frame, rate: int) -> int | None:
    """Index of a frame's first sample from its timestamp, or None where the timestamp does not give one."""
    if frame.pts is None or frame.time_base is None:
        return None
    position = frame.pts * frame.time_base * rate
    return int(position) if position.denominator == 1 else None


def load_audio(
    source, sampling_rate: int = AUDIO_SAMPLING_RATE, max_duration_s: int = AUDIO_CLIP_SECONDS
) -> np.ndarray:
    """The waveform the original computes the filterbank of, for an audio file: float64, `max_duration_s` at
    `sampling_rate` (480000 samples by default). Channel 0 of multichannel audio; the centred window of longer audio,
    decoded without holding the rest (see the module's docstring)."""
    source, name = _source(source, "audio")  # a URL is downloaded once, even when the file is read twice
    start = None if isinstance(source, str) else source.tell()
    with _open_audio_stream(source, "audio", name) as (container, stream, _):
        rate = stream.codec_context.sample_rate
        window = max_duration_s * rate
        chunks, total, offset = [], 0, None
        seekable = stream.codec_context.name.startswith(_INDEPENDENT_FRAME_CODECS)
        for frame in _frames(container, stream, rate, name):
            first = _first_sample(frame, rate)
            offset = first if offset is None else offset
            seekable = seekable and first is not None and first - offset == total  # timestamps count the samples
            if total <= window:  # may still be short: keep its samples until it is not
                chunks.append(_channel_zero(frame))
            total += frame.samples
            if total > window:
                chunks = []
        _check_length(stream, total, rate, name)
    if total > window:
        if start is not None:
            source.seek(start)
        waveform = _centred_window(source, name, total, window, offset if seekable else None)
    else:
        waveform = fit_to_length(np.concatenate(chunks), window)  # zero-padded at the file's rate, as the original
    if rate != sampling_rate:
        waveform = resample_fft(waveform, max_duration_s * sampling_rate)
    return waveform


def _centred_window(source, name: str, total: int, window: int, offset: int | None) -> np.ndarray:
    """Channel 0 of the centred `window` samples of a `total`-sample audio file, as float64. With `offset` (the first
    frame's timestamp in samples, where timestamps count the samples of frames that decode independently), decoding
    starts at a seek a second before the window; without, at the start. Either way it stops at the window's end."""
    begin = (total - window) // 2
    logger.info(f"{name}: {total} audio samples, more than {window}: keeping the centred {window} (from {begin}).")
    waveform = np.empty(window)
    with _open_audio_stream(source, "audio", name) as (container, stream, _):
        rate = stream.codec_context.sample_rate
        if offset is not None:
            target = offset + max(begin - rate, 0)  # a second early: a seek may land on the frame after the one asked
            container.seek(int(target / rate / stream.time_base), stream=stream, backward=True)
        position = None
        for frame in _frames(container, stream, rate, name):
            if position is None:  # where decoding starts
                position = 0 if offset is None else _first_sample(frame, rate) - offset
                if position > begin:
                    raise ValueError(f"Could not seek in {name}: re-encode it (e.g. to 16-bit WAV).")
            samples = _channel_zero(frame)
            low, high = max(begin, position), min(begin + window, position + len(samples))
            if low < high:
                waveform[low - begin : high - begin] = samples[low - position : high - position]
            position += len(samples)
            if position >= begin + window:
                return waveform
    raise ValueError(f"{name} ended before the {total} samples it held when first read: was it being written to?")


def decode_audio_track(source, sampling_rate: int = AUDIO_SAMPLING_RATE) -> np.ndarray:
    """The whole audio track of a video (or audio file) as mono int16 PCM at `sampling_rate`, like
    `ffmpeg -i FILE -vn -ac 1 -ar 16000 -f s16le -`, the command the original runs."""
    av = _import_av()
    with _open_audio_stream(source, "video") as (container, stream, name):
        resampler = av.AudioResampler(format="s16", layout="mono", rate=sampling_rate)
        chunks = [out.to_ndarray().ravel() for frame in container.decode(stream) for out in resampler.resample(frame)]
        chunks += [out.to_ndarray().ravel() for out in resampler.resample(None)]
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        _check_length(stream, len(pcm), sampling_rate, name)
    return pcm


def load_video_audio(
    source,
    sampling_rate: int = AUDIO_SAMPLING_RATE,
    max_duration_s: int = AUDIO_CLIP_SECONDS,
    clip_duration: int = VIDEO_CLIP_DURATION_S,
    num_clips: int = VIDEO_NUM_CLIPS,
) -> np.ndarray:
    """What the original hears of a video: `num_clips` clips of `clip_duration` seconds of its mono 16 kHz track
    (`clip_sample_ranges`), concatenated and zero-padded to `max_duration_s`, as float32 `int16 / 32768`."""
    pcm = decode_audio_track(source, sampling_rate)
    ranges = clip_sample_ranges(len(pcm), sampling_rate, clip_duration, num_clips)
    clips = np.concatenate([pcm[start:end] for start, end in ranges]).astype(np.float32) / 32768.0
    return fit_to_length(clips, max_duration_s * sampling_rate)


__all__ = [
    "check_audio_track",
    "clip_sample_ranges",
    "decode_audio_track",
    "fit_to_length",
    "load_audio",
    "load_video_audio",
    "resample_fft",
]
