# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Log-mel filterbanks for the BEATs audio encoder of VideoLLaMA2.1-AV, without torchaudio.

The original computes `torchaudio.compliance.kaldi.fbank(waveform * 2**15, num_mel_bins=128, frame_length=25,
frame_shift=10)` on 30 s of 16 kHz audio and rounds the result to bfloat16. `kaldi_fbank` performs the same torch
operations in the same order and dtypes (the waveform's: float64 for audio files, float32 for the audio of videos;
the mel filters in float32), so it returns what torchaudio returns on the same machine, bit for bit. Values that
land on a bfloat16 rounding tie can still round either way on another machine, since MKL's FFT, matrix product and
logarithm (used for the mel filters) differ in their last bits between CPU types.
"""

import math
from functools import lru_cache
from numbers import Number

import numpy as np
import torch
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import TensorType, logging

from .audio_decoding_videollama2 import fit_to_length, load_audio
from .token_counts_videollama2 import (
    AUDIO_CLIP_SECONDS,
    AUDIO_SAMPLING_RATE,
    FBANK_FRAME_LENGTH_MS,
    FBANK_FRAME_SHIFT_MS,
    FBANK_MEL_BINS,
    num_fbank_frames,
)
from .video_decoding_videollama2 import is_video_source


logger = logging.get_logger(__name__)

# Kaldi's fbank defaults, which the original keeps: no dither, DC offset removed per frame, pre-emphasis 0.97, Povey
# window, FFT size rounded up to a power of two, mel filters from 20 Hz to Nyquist, log of the power spectrum floored
# at float32's epsilon.
PREEMPHASIS = 0.97
POVEY_WINDOW_POWER = 0.85
LOW_FREQUENCY = 20.0
LOG_FLOOR = torch.finfo(torch.float32).eps
PCM_SCALE = 2**15  # Kaldi expects 16-bit sample values, not [-1, 1)


def _mel(frequency):
    return 1127.0 * (1.0 + frequency / 700.0).log()


@lru_cache
def kaldi_mel_filters(num_mel_bins: int, fft_length: int, sampling_rate: int) -> torch.Tensor:
    """(num_mel_bins, fft_length // 2 + 1) triangular filters, equally spaced on Kaldi's mel scale, in float32 (as
    Kaldi and torchaudio compute them); the Nyquist column is zero."""
    mel_low = 1127.0 * math.log(1.0 + LOW_FREQUENCY / 700.0)
    mel_high = 1127.0 * math.log(1.0 + sampling_rate / 2 / 700.0)
    mel_step = (mel_high - mel_low) / (num_mel_bins + 1)
    index = torch.arange(num_mel_bins).unsqueeze(1)
    left = mel_low + index * mel_step
    center = mel_low + (index + 1.0) * mel_step
    right = mel_low + (index + 2.0) * mel_step
    bin_mels = _mel(sampling_rate / fft_length * torch.arange(fft_length // 2, dtype=torch.float32)).unsqueeze(0)
    rising = (bin_mels - left) / (center - left)
    falling = (right - bin_mels) / (right - center)
    filters = torch.max(torch.zeros(1), torch.min(rising, falling))
    return torch.nn.functional.pad(filters, (0, 1))


def kaldi_fbank(
    waveform: torch.Tensor,
    num_mel_bins: int,
    sampling_rate: int,
    frame_length_ms: float = 25.0,
    frame_shift_ms: float = 10.0,
) -> torch.Tensor:
    """(frames, num_mel_bins) log-mel energies of a 1-D waveform (in 16-bit sample units) with Kaldi's defaults,
    computed in the waveform's dtype. Only frames that fit entirely are kept (Kaldi's `snip_edges`)."""
    window_size = int(sampling_rate * frame_length_ms * 0.001)
    window_shift = int(sampling_rate * frame_shift_ms * 0.001)
    fft_length = 1 << (window_size - 1).bit_length()
    num_frames = 1 + (len(waveform) - window_size) // window_shift
    frames = waveform.as_strided((num_frames, window_size), (window_shift * waveform.stride(0), waveform.stride(0)))
    frames = frames - frames.mean(dim=1, keepdim=True)
    frames = frames - PREEMPHASIS * torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    window = torch.hann_window(window_size, periodic=False, dtype=waveform.dtype).pow(POVEY_WINDOW_POWER)
    frames = torch.nn.functional.pad(frames * window, (0, fft_length - window_size))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    filters = kaldi_mel_filters(num_mel_bins, fft_length, sampling_rate).to(waveform.dtype)
    energies = torch.mm(power, filters.T)
    return torch.max(energies, torch.tensor(LOG_FLOOR, dtype=waveform.dtype)).log()


class VideoLlama2FeatureExtractor(SequenceFeatureExtractor):
    r"""
    Turns 16 kHz mono waveforms into the Kaldi-compatible log-mel filterbanks the BEATs encoder of VideoLLaMA2.1-AV
    reads: every clip is cut or zero-padded to `max_duration_s` (centred window of longer audio; the original drew a
    random one), scaled to 16-bit units, and turned into `(frames, feature_size)` log-mel energies (2998 x 128 for
    30 s), rounded to bfloat16 as the original does.

    The precision follows the waveform's dtype, as in the original: float64 arrays (what `load_audio` returns for
    audio files) are transformed in float64, float32 arrays (what `load_video_audio` returns for videos) in float32,
    int16 arrays are read as PCM (`/ 32768`, float32). `input_features` are float32 tensors holding the bfloat16
    values, so that casting them to the model's dtype equals casting the original's bfloat16 tensor.

    No attention mask is returned: the original gives BEATs an all-False padding mask, so the encoder attends to the
    zero padding of short clips too.

    Args:
        feature_size (`int`, *optional*, defaults to 128):
            Number of mel bins.
        sampling_rate (`int`, *optional*, defaults to 16000):
            Sampling rate the waveforms must have.
        padding_value (`float`, *optional*, defaults to 0.0):
            Value that pads short waveforms (silence).
        max_duration_s (`int`, *optional*, defaults to 30):
            Every clip is cut or padded to this duration.
        frame_length_ms (`float`, *optional*, defaults to 25.0):
            Analysis window length.
        frame_shift_ms (`float`, *optional*, defaults to 10.0):
            Hop between windows.
        round_to_bfloat16 (`bool`, *optional*, defaults to `True`):
            Round the filterbank to bfloat16 values, as the original does before the model sees it.
    """

    model_input_names = ["input_features"]

    def __init__(
        self,
        feature_size: int = FBANK_MEL_BINS,
        sampling_rate: int = AUDIO_SAMPLING_RATE,
        padding_value: float = 0.0,
        max_duration_s: int = AUDIO_CLIP_SECONDS,
        frame_length_ms: float = FBANK_FRAME_LENGTH_MS,
        frame_shift_ms: float = FBANK_FRAME_SHIFT_MS,
        round_to_bfloat16: bool = True,
        **kwargs,
    ):
        kwargs.setdefault("return_attention_mask", False)
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value, **kwargs)
        self.max_duration_s = max_duration_s
        self.frame_length_ms = frame_length_ms
        self.frame_shift_ms = frame_shift_ms
        self.round_to_bfloat16 = round_to_bfloat16

    @property
    def num_samples(self) -> int:
        """Samples of every clip after cutting or padding (480000)."""
        return self.max_duration_s * self.sampling_rate

    @property
    def num_frames(self) -> int:
        """Filterbank frames of every clip (2998 for 30 s with 25 ms windows every 10 ms)."""
        return num_fbank_frames(self.num_samples, self.sampling_rate, self.frame_length_ms, self.frame_shift_ms)

    def fetch_audio(self, audio, sampling_rate: int | None = None):
        """Audio files (paths, URLs, bytes, file objects), or a list of them, decoded the original's way
        (`load_audio`: float64, channel 0, cut or padded to `max_duration_s`, FFT-resampled to `sampling_rate`);
        waveforms are returned as they are. The processor calls this for `audio=` and chat audio items."""
        if isinstance(audio, (list, tuple)) and not (audio and isinstance(audio[0], Number)):
            return [self.fetch_audio(item, sampling_rate) for item in audio]
        if is_video_source(audio):
            return load_audio(audio, sampling_rate or self.sampling_rate, self.max_duration_s)
        return audio

    def _waveforms(self, raw_audio) -> list[np.ndarray]:
        """One 1-D float array per clip, from an array, a tensor, a list of them or a list of floats."""
        if isinstance(raw_audio, torch.Tensor):
            raw_audio = raw_audio.numpy(force=True)
        if isinstance(raw_audio, np.ndarray):
            if raw_audio.ndim not in (1, 2):
                raise ValueError(
                    f"Audio must be a 1-D mono waveform or a (batch, samples) array, got shape {raw_audio.shape}. "
                    "Pick one channel (the original uses channel 0) or average them first."
                )
            clips = [raw_audio] if raw_audio.ndim == 1 else list(raw_audio)
        elif isinstance(raw_audio, (list, tuple)) and raw_audio and all(np.isscalar(x) for x in raw_audio):
            clips = [np.asarray(raw_audio)]
        elif isinstance(raw_audio, (list, tuple)) and raw_audio:
            clips = [x.numpy(force=True) if isinstance(x, torch.Tensor) else np.asarray(x) for x in raw_audio]
        else:
            raise TypeError(
                f"Unsupported audio input of type {type(raw_audio).__name__}. Pass a 1-D waveform (numpy array, "
                "tensor or list of floats) or a list of them; decode files with `load_audio` / `load_video_audio`."
            )
        waveforms = []
        for clip in clips:
            if clip.ndim != 1:
                raise ValueError(f"Each waveform must be 1-D mono, got shape {clip.shape}. Pick or average channels.")
            if clip.size == 0:
                raise ValueError("An audio waveform is empty; there is nothing to hear.")
            if clip.dtype == np.int16:
                clip = clip.astype(np.float32) / 32768.0
            elif clip.dtype not in (np.float32, np.float64):
                raise ValueError(
                    f"Unsupported waveform dtype {clip.dtype}: pass float32/float64 samples in [-1, 1] or int16 PCM."
                )
            waveforms.append(fit_to_length(clip, self.num_samples))
        return waveforms

    def __call__(
        self,
        raw_audio: np.ndarray | torch.Tensor | list,
        sampling_rate: int | None = None,
        return_tensors: str | TensorType | None = None,
        **kwargs,
    ) -> BatchFeature:
        """
        Compute `input_features` of shape `(batch, num_frames, feature_size)`.

        Args:
            raw_audio (`np.ndarray`, `torch.Tensor`, `list[float]` or a list of these):
                One 1-D mono waveform at `sampling_rate` (samples in [-1, 1], or int16 PCM), or a batch of them.
            sampling_rate (`int`, *optional*):
                Sampling rate of `raw_audio`; it must equal the extractor's (resample first, e.g. with
                `load_audio`). Strongly recommended, to catch audio at another rate.
            return_tensors (`str` or [`~utils.TensorType`], *optional*):
                `"pt"` for torch tensors, `"np"` for numpy arrays; lists of arrays otherwise.
        """
        if sampling_rate is None:
            logger.warning_once(
                f"Pass `sampling_rate` to {self.__class__.__name__}: audio at another rate than "
                f"{self.sampling_rate} Hz gives wrong features without any error."
            )
        elif sampling_rate != self.sampling_rate:
            raise ValueError(
                f"The audio is sampled at {sampling_rate} Hz but this feature extractor expects {self.sampling_rate} "
                "Hz. Resample it first (`load_audio` resamples audio files as the original does)."
            )
        features = []
        for waveform in self._waveforms(raw_audio):
            fbank = kaldi_fbank(
                torch.from_numpy(np.ascontiguousarray(waveform)) * PCM_SCALE,
                self.feature_size,
                self.sampling_rate,
                self.frame_length_ms,
                self.frame_shift_ms,
            )
            if self.round_to_bfloat16:
                fbank = fbank.to(torch.bfloat16)
            features.append(fbank.float().numpy())
        return BatchFeature({"input_features": features}, tensor_type=return_tensors)


__all__ = ["VideoLlama2FeatureExtractor", "kaldi_fbank", "kaldi_mel_filters"]
