# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""How many LLM positions an image, a video or an audio clip becomes: the table of connector types and the
formulas built on it.

Plain Python (no torch, no transformers), so that the processor, the model, the config, `videollama2-hf info` and
the tests all count with the same function, and the command line can count without importing a tensor library.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Connector:
    """What a connector type does between the vision tower and the language model: the one table that the model
    (which modules it builds), the token counts and the config's validation read.

    `sampler` is the 3-D (time, height, width) downsampler between the connector's two RegNet stages: a strided
    convolution (`"conv"`, zero-padded by `padding` on every side) or an average pool (`"avg_pool"`); `None` for the
    MLP connector, which averages the frames and projects every patch. The padding changes the token count as much as
    the Conv3d, so it lives here once.
    """

    sampler: str | None
    padding: int = 0


CONNECTORS = {
    "stc_connector": Connector(sampler="conv", padding=1),  # VideoLLaMA2
    "stc_connector_v35": Connector(sampler="conv"),  # VideoLLaMA2.1
    "stp_connector": Connector(sampler="avg_pool"),
    "mlp": Connector(sampler=None),
}
DEFAULT_DOWNSAMPLE = (2, 2, 2)  # (time, height, width) kernel and stride of the sampler


# Frames per clip when a release's config.json does not say (the original's NUM_FRAMES).
DEFAULT_NUM_FRAMES = 8

# The audio clips of VideoLLaMA2.1-AV: 30 s of 16 kHz mono, a Kaldi filterbank of 25 ms windows every 10 ms with 128
# mel bins (2998 x 128), cut into BEATs' 16 x 16 patches.
AUDIO_SAMPLING_RATE = 16000
AUDIO_CLIP_SECONDS = 30
FBANK_FRAME_LENGTH_MS = 25.0
FBANK_FRAME_SHIFT_MS = 10.0
FBANK_MEL_BINS = 128


def num_visual_tokens(
    projector_type: str,
    grid_size: int,
    num_frames: int,
    downsample: tuple[int, int, int] | list[int] = DEFAULT_DOWNSAMPLE,
) -> int:
    """Number of LLM positions one image or video occupies.

    `grid_size` is the side of the vision tower's patch grid (image_size // patch_size); images are replicated to
    `num_frames`, so they cost the same as a video of that length.
    """
    if projector_type not in CONNECTORS:
        raise ValueError(f"Unsupported projector type {projector_type!r}; expected one of {sorted(CONNECTORS)}.")
    connector = CONNECTORS[projector_type]
    if connector.sampler is None:  # frames are averaged before the projector
        return grid_size * grid_size
    padding = connector.padding
    stride_t, stride_h, stride_w = downsample
    if num_frames + 2 * padding < stride_t:
        raise ValueError(
            f"{projector_type} needs at least {stride_t - 2 * padding} frames per clip, got {num_frames}. "
            "Pass more frames (e.g. `num_frames=16`) or pad the clip."
        )

    def out(size: int, stride: int) -> int:  # Conv3d / AvgPool3d with kernel == stride
        return (size + 2 * padding - stride) // stride + 1

    return out(num_frames, stride_t) * out(grid_size, stride_h) * out(grid_size, stride_w)


def num_fbank_frames(
    num_samples: int = AUDIO_CLIP_SECONDS * AUDIO_SAMPLING_RATE,
    sampling_rate: int = AUDIO_SAMPLING_RATE,
    frame_length_ms: float = FBANK_FRAME_LENGTH_MS,
    frame_shift_ms: float = FBANK_FRAME_SHIFT_MS,
) -> int:
    """Frames of a Kaldi filterbank without edge padding: 2998 for the 30 s x 16 kHz clips of VideoLLaMA2.1-AV."""
    window = int(sampling_rate * frame_length_ms * 0.001)
    shift = int(sampling_rate * frame_shift_ms * 0.001)
    return 1 + (num_samples - window) // shift


def num_audio_tokens(num_frames: int, num_mel_bins: int, patch_size: int) -> int:
    """Number of LLM positions one audio clip occupies: the BEATs patch grid of its (frames x mel bins) filterbank.

    The patch embedding is a convolution with kernel = stride = `patch_size`, so partial patches at the end of
    either axis are dropped: 2998 frames x 128 bins in 16 x 16 patches -> 187 x 8 = 1496 tokens.
    """
    if num_frames < patch_size or num_mel_bins < patch_size:
        raise ValueError(
            f"An audio filterbank of {num_frames} frames x {num_mel_bins} mel bins is smaller than one "
            f"{patch_size} x {patch_size} patch; pass at least {patch_size} frames of audio."
        )
    return (num_frames // patch_size) * (num_mel_bins // patch_size)


__all__ = [
    "CONNECTORS",
    "DEFAULT_NUM_FRAMES",
    "num_audio_tokens",
    "num_fbank_frames",
    "num_visual_tokens",
]
