# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Video processor for VideoLLaMA2: the original frame sampler and padding, PIL-exact pixels.

The original `process_video` decodes with decord, picks the middle frame of `num_frames` equal segments, pads short
clips with black frames, keeps at most 32 frames and runs the vision tower's slow (PIL) image processor on every
frame. This module reproduces those frames and pixels bit for bit; `video_decoding_videollama2` reads the frames
(decoding far less of each video than the original), and each frame is converted and resized on a worker thread while
the next one decodes, with as many workers as there are CPUs to run them (none on a single usable CPU).
"""

import math
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import lru_cache, partial
from numbers import Real

import numpy as np
import PIL.Image
import torch
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_transforms import get_resize_output_image_size
from transformers.image_utils import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ChannelDimension,
    PILImageResampling,
    SizeDict,
)
from transformers.processing_utils import VideosKwargs
from transformers.utils import TensorType, logging
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata

from .token_counts_videollama2 import DEFAULT_NUM_FRAMES
from .video_decoding_videollama2 import (
    PyAVVideo,
    frame_indices_to_read,
    is_video_source,
    load_image,
    open_video,
    rgb_array,
    rgb_shape,
    split_videos,
)


logger = logging.get_logger(__name__)

# Stateless PIL-backend operations (resize, center crop, rescale, normalize) shared by every processor instance.
_PIL_OPS = PilBackend()


class VideoLlama2VideoProcessorKwargs(VideosKwargs, total=False):
    r"""
    max_frames (`int`, *optional*, defaults to 32):
        Keep at most this many frames of a clip, counted from its start, after padding to `num_frames`. The original
        truncates the same way (`MAX_FRAMES`), so `num_frames > max_frames` keeps only the first part of the video.
    start_time (`float`, *optional*):
        Start of the time window (seconds) to sample from. Negative values count as 0.
    end_time (`float`, *optional*):
        End of the time window (seconds). With both ends given, they are swapped if reversed and `end_time` becomes
        `start_time + 1` if they are equal, as in the original.
    apply_rotation (`bool`, *optional*, defaults to `True`):
        Turn the frames of video files upright as players show them, following the rotation their container records
        (phones record portrait videos as rotated landscape frames). `False` keeps the coded frames, as the
        original's decord returned them (sideways for such videos).
    """

    max_frames: int | None
    start_time: int | float | None
    end_time: int | float | None
    apply_rotation: bool | None


def _check_time(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"`{name}` must be a number of seconds, got {type(value).__name__}.")
    if not math.isfinite(value):
        raise ValueError(f"`{name}` must be a finite number of seconds, got {value}.")
    return max(float(value), 0.0)


def frame_window(
    total_frames: int, fps: float | None = None, start_time: float | None = None, end_time: float | None = None
) -> tuple[int, int]:
    """First and last frame index (inclusive) of the `[start_time, end_time]` window, with the original's rules.

    Both ends given: negatives become 0, a reversed window is swapped and an empty one (`start == end`) lasts one
    second. Frame bounds are `int(t * fps) - 1` (the original's offset), clamped to the video.
    """
    total_frames = int(total_frames)
    if total_frames < 1:
        raise ValueError(f"A video needs at least one frame to sample from, got total_frames={total_frames}.")
    if start_time is None and end_time is None:
        return 0, total_frames - 1
    if fps is None or not fps > 0:
        raise ValueError(
            "`start_time`/`end_time` need the video's frame rate, which is unknown here. For arrays, "
            "pass `video_metadata={'fps': ...}`, or drop the time window."
        )
    start = None if start_time is None else _check_time(start_time, "start_time")
    end = None if end_time is None else _check_time(end_time, "end_time")
    if start is not None and end is not None:
        if start > end:
            start, end = end, start
        elif start == end:
            end = start + 1
    first = 0 if start is None else max(int(start * fps) - 1, 0)
    last = total_frames - 1 if end is None else min(int(end * fps) - 1, total_frames - 1)
    if last < first:
        raise ValueError(
            f"The time window start_time={start_time}, end_time={end_time} holds no frame of this "
            f"{total_frames}-frame video ({total_frames / fps:.2f} s at {fps:g} fps). Pick a window inside the video."
        )
    return first, last


def sample_frame_indices(
    total_frames: int,
    num_frames: int,
    fps: float | None = None,
    start_time: float | None = None,
    end_time: float | None = None,
) -> np.ndarray:
    """Indices of the frames the original VideoLLaMA2 samples: the middle of `num_frames` equal segments.

    The segments split `[0, duration - 1]` of the (optional) time window, and each centre is rounded with numpy after
    adding 1e-6 (so halves round up): `round(seg * (i + 0.5) + 1e-6)` with `seg = (duration - 1) / num_frames`.
    Short clips repeat frames. `fps` is the video's frame rate, only needed for a time window.
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)) or num_frames < 1:
        raise ValueError(f"`num_frames` must be a positive integer, got {num_frames!r}.")
    first, last = frame_window(total_frames, fps, start_time, end_time)
    segment = float(last - first) / num_frames
    steps = np.arange(num_frames, dtype=np.float64)
    # (start + end) / 2 of each segment, computed exactly as the original does to get the same roundings.
    centres = (segment * steps + segment * (steps + 1)) / 2
    return np.round(centres + 1e-6).astype(np.int64) + first


def _rgb_frame(frame, input_data_format=None, do_convert_rgb: bool = True) -> np.ndarray:
    """One frame as a (H, W, 3) uint8 RGB array. Alpha is dropped, as the original's PIL `convert("RGB")` does."""
    if isinstance(frame, PIL.Image.Image):
        frame = np.asarray(frame.convert("RGB") if do_convert_rgb and frame.mode != "RGB" else frame)
        input_data_format = ChannelDimension.LAST
    elif torch.is_tensor(frame):
        frame = frame.detach().cpu().numpy()
    if frame.ndim == 2:
        frame = frame[..., None]
    if input_data_format is None:
        # Channels-last is this processor's documented layout, so it wins when both ends look like channels.
        if frame.shape[-1] in (1, 3, 4):
            input_data_format = ChannelDimension.LAST
        elif frame.shape[0] in (1, 3, 4):
            input_data_format = ChannelDimension.FIRST
        else:
            raise ValueError(f"Cannot tell the channel axis of a frame of shape {frame.shape}; expected (H, W, 3).")
    if ChannelDimension(input_data_format) == ChannelDimension.FIRST:
        frame = np.moveaxis(frame, 0, -1)
    if frame.dtype != np.uint8:
        if not np.issubdtype(frame.dtype, np.integer) or frame.size and (frame.min() < 0 or frame.max() > 255):
            raise TypeError(
                f"Video frames must hold uint8 RGB values (0-255), got dtype {frame.dtype}. Convert them first, "
                "e.g. `(frames * 255).round().astype(np.uint8)` for floats in [0, 1]."
            )
        frame = frame.astype(np.uint8)
    if 0 in frame.shape[:2]:
        raise ValueError(f"Video frames must not be empty, got a frame of shape {frame.shape}.")
    channels = frame.shape[-1]
    if channels != 3 and do_convert_rgb and channels in (1, 4):
        frame = np.repeat(frame, 3, axis=-1) if channels == 1 else frame[..., :3]
    if frame.shape[-1] != 3:
        raise ValueError(
            f"Video frames must have 3 (RGB) channels, got {frame.shape[-1]}. Set `do_convert_rgb=True` to convert "
            "grayscale and RGBA frames."
        )
    return frame


def _rescale_normalize_table(
    do_rescale: bool, rescale_factor: float, do_normalize: bool, image_mean, image_std
) -> np.ndarray | None:
    """(3, 256) lookup table of transformers' PIL-backend rescale + normalize applied to every uint8 value.

    Both steps are per pixel, so looking the result up is bit-identical to computing it on each frame, and much
    cheaper than the float64 round trip the PIL backend does on every pixel.
    """
    if not (do_rescale or do_normalize):
        return None
    values = np.broadcast_to(np.arange(256, dtype=np.uint8), (3, 1, 256))
    if do_rescale:
        values = _PIL_OPS.rescale(values, rescale_factor)
    if do_normalize:
        values = _PIL_OPS.normalize(values, image_mean, image_std)
    return np.ascontiguousarray(values[:, 0, :])


# PIL resamples with these filters in two separable passes, each rounded to uint8.
_TWO_PASS_FILTERS = {
    PILImageResampling.BOX,
    PILImageResampling.BILINEAR,
    PILImageResampling.HAMMING,
    PILImageResampling.BICUBIC,
    PILImageResampling.LANCZOS,
}


@lru_cache(maxsize=64)
def _first_pass(height: int, width: int, new_height: int, new_width: int, resample) -> str | None:
    """Which pass PIL runs first for this resize ("horizontal" or "vertical"; None if neither split reproduces it).

    Pillow 10 ran the horizontal pass first for every shape measured; Pillow 13 picks the order per shape by a rule it
    does not document (vertical first for 79 of 331 random shapes). So the order is read off one resize of a fixed
    pseudo-random image per shape (cached): each split order is bit-identical to the one-call resize exactly when
    PIL runs its passes in that order.
    """
    noise = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8))
    reference = np.asarray(noise.resize((new_width, new_height), resample))
    horizontal_first = noise.resize((new_width, height), resample).resize((new_width, new_height), resample)
    if np.array_equal(np.asarray(horizontal_first), reference):
        return "horizontal"
    vertical_first = noise.resize((width, new_height), resample).resize((new_width, new_height), resample)
    return "vertical" if np.array_equal(np.asarray(vertical_first), reference) else None


def _resize_then_crop(
    frame: np.ndarray, resize_size: SizeDict | None, resample, crop_size: SizeDict | None
) -> np.ndarray | None:
    """The PIL backend's resize followed by its center crop, with PIL's second pass run only on the rows or columns
    the crop keeps; None where that does not apply (the caller then runs the backend's own steps).

    Each pass treats rows (horizontal) or columns (vertical) independently, so cropping between the two passes gives
    the same bits: a 640x360 frame resized to 597x336 and cropped to 336x336 needs 44% less of its vertical pass.
    """
    if resize_size is None or crop_size is None or resample not in _TWO_PASS_FILTERS:
        return None
    height, width = frame.shape[:2]
    if resize_size.shortest_edge and not resize_size.longest_edge:
        new_height, new_width = get_resize_output_image_size(
            frame, resize_size.shortest_edge, default_to_square=False, input_data_format=ChannelDimension.LAST
        )
    elif resize_size.height and resize_size.width:
        new_height, new_width = resize_size.height, resize_size.width
    else:
        return None
    top, left = (new_height - crop_size.height) // 2, (new_width - crop_size.width) // 2
    if top < 0 or left < 0:  # the crop pads: rare, left to the backend
        return None
    first_pass = _first_pass(height, width, new_height, new_width, PILImageResampling(resample))
    if first_pass is None:
        return None
    rows, columns = (top, top + crop_size.height), (left, left + crop_size.width)
    image = PIL.Image.fromarray(frame)
    if first_pass == "horizontal":
        image = image.resize((new_width, height), resample).crop((columns[0], 0, columns[1], height))
        image = image.resize((crop_size.width, new_height), resample)
        return np.asarray(image)[rows[0] : rows[1]]
    image = image.resize((width, new_height), resample).crop((0, rows[0], width, rows[1]))
    image = image.resize((new_width, crop_size.height), resample)
    return np.asarray(image)[:, columns[0] : columns[1]]


def _transform_frame(
    frame,
    resize_size: SizeDict | None,
    resample,
    crop_size: SizeDict | None,
    table: np.ndarray | None,
    upright: bool = True,
) -> np.ndarray:
    """Resize, center-crop, rescale and normalize one (H, W, 3) uint8 frame (or decoded PyAV frame, turned `upright`)
    exactly as the PIL image processors do."""
    if not isinstance(frame, np.ndarray):
        frame = rgb_array(frame, upright)
    pixels = _resize_then_crop(frame, resize_size, resample, crop_size)
    if pixels is not None:
        image = pixels.transpose(2, 0, 1)
    else:
        image = np.moveaxis(frame, -1, 0)  # channels-first view, the PIL backend's layout
        if resize_size is not None:
            image = _PIL_OPS.resize(image, size=resize_size, resample=resample)
        if crop_size is not None:
            image = _PIL_OPS.center_crop(image, crop_size)
    if table is None:
        return np.ascontiguousarray(image)
    output = np.empty(image.shape, dtype=table.dtype)
    for channel in range(image.shape[0]):
        np.take(table[channel], image[channel], out=output[channel])
    return output


def worker_threads(decoding: bool) -> int:
    """Threads to transform frames on; 0 runs them on the calling thread.

    The budget is the user's: `torch.get_num_threads()` within the process's CPU affinity (1 in DataLoader workers,
    where processes already run side by side). While the calling thread decodes a video file, the other threads of
    the budget resize; frames given as arrays have no decoding to overlap, so a single thread works inline.
    """
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cpus = max(1, min(cpus, torch.get_num_threads()))
    if decoding:
        return cpus - 1
    return cpus if cpus > 1 else 0


class _InlineExecutor:
    """Runs each task when it is submitted: the pool used when no other CPU is idle."""

    @staticmethod
    def submit(function: Callable, *args) -> Future:
        future = Future()
        future.set_result(function(*args))
        return future

    def shutdown(self) -> None:
        pass


def _given_fps(video_metadata, num_videos: int) -> list[float | None]:
    """Frame rate of each video from user metadata (dicts or `VideoMetadata`, one per video, possibly grouped per
    conversation as `[[{...}], ...]`, as transformers accepts it); None if not given.

    Only the rate matters here (for time windows and `fps` sampling of arrays): frame counts come from the videos.
    """
    if video_metadata is None:
        return [None] * num_videos
    if not isinstance(video_metadata, (list, tuple)):
        video_metadata = [video_metadata]
    if all(isinstance(group, (list, tuple)) for group in video_metadata):
        video_metadata = [metadata for group in video_metadata for metadata in group]
    if len(video_metadata) != num_videos:
        raise ValueError(f"Got {len(video_metadata)} `video_metadata` entries for {num_videos} videos; pass one each.")
    return [None if metadata is None else metadata.get("fps") for metadata in video_metadata]


class VideoLlama2VideoProcessor(BaseVideoProcessor):
    r"""
    Video processor of VideoLLaMA2: the original frame sampling, padding and truncation, with the vision tower's
    PIL-exact resizing.

    Defaults are CLIP ViT-L/14-336's (resize the shortest edge to 336 with PIL bicubic, center-crop 336, CLIP mean and
    std). For SigLIP towers use `size={"height": 384, "width": 384}`, `do_center_crop=False` and
    `image_mean=image_std=[0.5, 0.5, 0.5]`.

    Inputs: a path, URL, bytes or file object of a video or GIF, a folder of frame images, a `(T, H, W, 3)` uint8
    array or tensor, a list of frames (PIL images or arrays), or a list of any of these (a batch). Files are decoded
    with PyAV (never torchcodec). `num_frames` frames are sampled from files and from 4-D arrays, as other transformers
    video processors do with `do_sample_frames=True`; pass `do_sample_frames=False` to use an array's frames as they
    are, like the original did. Lists of frames are used as given; a list of image files needs
    `do_sample_frames=False` (as in transformers, such frames are taken to be sampled already). Clips shorter than
    `num_frames` are padded with black frames (the original's padding), then at most `max_frames` frames are kept.
    Sampling more frames than a clip has repeats frames at the model's own `num_frames` (the original's sampler, so
    every clip costs the tokens the model was trained with); any other `num_frames` or an `fps` asking for more frames
    than the clip has raises `ValueError`, as transformers' samplers do.

    Video files are decoded upright, as players show them: the rotation their container records (portrait phone videos)
    is applied; `apply_rotation=False` gives the coded frames, as the original's decord did.

    `start_time`/`end_time` (seconds) restrict sampling to a window, and `fps` samples that many frames per second
    instead of `num_frames` (without padding); both apply where frames are sampled. Arrays need
    `video_metadata={"fps": ...}` for a window. `return_metadata=True` adds each video's `VideoMetadata`, whose
    `frames_indices` are the frames used.
    """

    resample = PILImageResampling.BICUBIC
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    size = {"shortest_edge": 336}
    default_to_square = False
    crop_size = {"height": 336, "width": 336}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True
    do_sample_frames = True
    num_frames = DEFAULT_NUM_FRAMES
    max_frames = 32  # the original's MAX_FRAMES
    start_time = None
    end_time = None
    apply_rotation = True
    valid_kwargs = VideoLlama2VideoProcessorKwargs

    def sample_frames(
        self,
        metadata: VideoMetadata,
        num_frames: int | None = None,
        fps: int | float | None = None,
        start_time: float | None = None,
        end_time: float | None = None,
        max_frames: int | None = None,
        **kwargs,
    ) -> np.ndarray:
        """Original VideoLLaMA2 sampling (`sample_frame_indices`) of `metadata`'s video, cut to `max_frames`.

        `fps` (frames to sample per second) replaces `num_frames` by the number of frames that rate gives over the
        window, as in transformers' default sampler. Asking for more frames than the window holds raises, as
        transformers' samplers do, except at the model's own `num_frames`: there short clips repeat frames, as the
        original's sampler does, so that every clip gets the token count the model was trained with.
        """
        num_frames = num_frames if num_frames is not None else self.num_frames
        max_frames = max_frames if max_frames is not None else self.max_frames
        if fps is not None and not metadata.fps:
            raise ValueError("Sampling at `fps` frames per second needs the video's frame rate in its metadata.")
        first, last = frame_window(metadata.total_num_frames, metadata.fps, start_time, end_time)
        available = last - first + 1
        if fps is not None:
            num_frames = max(1, int(available / metadata.fps * fps))
        if num_frames > available and (fps is not None or num_frames != self.num_frames):
            asked = f"`fps={fps}` gives {num_frames} frames" if fps is not None else f"`num_frames={num_frames}`"
            raise ValueError(
                f"{asked}, but the video has only {available} frames to sample from: ask for at most {available} "
                f"frames, or leave `num_frames` at the model's {self.num_frames} (short clips then repeat frames, as "
                "the original does)."
            )
        indices = sample_frame_indices(metadata.total_num_frames, num_frames, metadata.fps, start_time, end_time)
        if max_frames is not None and len(indices) > max_frames:
            logger.warning_once(
                f"Sampled {len(indices)} frames but `max_frames` is {max_frames}: only the first {max_frames} are "
                "kept (the original's MAX_FRAMES behaviour), so the end of the video is not seen."
            )
            indices = indices[:max_frames]
        return indices

    def fetch_videos(self, video_url_or_urls, sample_indices_fn: Callable | None = None):
        """Decode one video source (or a list of them) into `(frames, metadata)` with PyAV / PIL, never torchcodec.

        Frames come as a `(T, H, W, 3)` uint8 array (a list of arrays for an image folder). Without
        `sample_indices_fn`, the first `max_frames` frames are read.
        """
        if isinstance(video_url_or_urls, (list, tuple)):
            decoded = [self.fetch_videos(video, sample_indices_fn) for video in video_url_or_urls]
            return [frames for frames, _ in decoded], [metadata for _, metadata in decoded]
        video, metadata = open_video(video_url_or_urls, sample_indices_fn, self.max_frames, self.apply_rotation)
        return (video.frames() if isinstance(video, PyAVVideo) else video), metadata

    def _decode_and_sample_videos(
        self,
        videos,
        video_metadata: VideoMetadata | dict | list | None = None,
        do_sample_frames: bool | None = None,
        sample_indices_fn: Callable | None = None,
    ) -> tuple[list, list[VideoMetadata]]:
        """Sample frames: from files always, from 4-D arrays when `do_sample_frames`, from frame lists never.

        Video files are only indexed here; `_preprocess` decodes them, so that frames are resized while the next ones
        decode. Without sampling, files and arrays give their first `self.max_frames` frames.
        """
        videos = split_videos(videos)
        given_fps = _given_fps(video_metadata, len(videos))
        decoded_videos, metadata_list = [], []
        for video, fps in zip(videos, given_fps):
            if is_video_source(video):
                frames, metadata = open_video(video, sample_indices_fn if do_sample_frames else None, self.max_frames)
            elif isinstance(video, (list, tuple)):  # frames, used as given
                if do_sample_frames and any(isinstance(frame, (str, os.PathLike)) for frame in video):
                    # image files of a video are taken to be its sampled frames already, as in transformers
                    if len(video) == 1:  # a chat's video item naming an image file
                        raise ValueError(
                            f"{os.fspath(video[0])} is an image, not a video: pass it as an image (an image item or "
                            "`image_url`, or `images=`), or as a video's frames with `do_sample_frames=False`."
                        )
                    raise ValueError(
                        "Sampling frames from a list of images is not supported! Set `do_sample_frames=False` to use "
                        "these image files as the video's frames."
                    )
                frames = [load_image(frame) if isinstance(frame, (str, os.PathLike)) else frame for frame in video]
                metadata = VideoMetadata(
                    total_num_frames=len(frames), fps=fps, frames_indices=list(range(len(frames)))
                )
            else:  # a (T, ...) array or tensor: the frame axis is first whatever the channel layout
                if len(video) == 0:
                    raise ValueError("The video array has no frames.")
                metadata = VideoMetadata(total_num_frames=len(video), fps=fps)
                sampler = sample_indices_fn if do_sample_frames else None
                metadata.frames_indices = frame_indices_to_read(sampler, metadata, self.max_frames)
                frames = video[metadata.frames_indices]
            decoded_videos.append(frames)
            metadata_list.append(metadata)
        return decoded_videos, metadata_list

    def _prepare_input_videos(
        self, videos: list, do_convert_rgb: bool | None = None, input_data_format=None, device=None
    ) -> list:
        """Every video as (H, W, 3) uint8 RGB frames, the PIL processors' input (video files decode to that)."""
        prepared = []
        for video in videos:
            if not isinstance(video, PyAVVideo):
                video = [_rgb_frame(frame, input_data_format, do_convert_rgb) for frame in video]
                if not video:
                    raise ValueError("A video without frames cannot be processed.")
            prepared.append(video)
        return prepared

    def _preprocess(
        self,
        videos: list,
        do_resize: bool,
        size: SizeDict,
        resample,
        do_center_crop: bool,
        crop_size: SizeDict,
        do_rescale: bool,
        rescale_factor: float,
        do_normalize: bool,
        image_mean,
        image_std,
        num_frames: int | None = None,
        max_frames: int | None = None,
        fps: int | float | None = None,
        apply_rotation: bool = True,
        return_tensors: str | TensorType | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Keep `max_frames`, pad to `num_frames` with black frames, then the PIL image processor's steps per frame
        (frames of video files turned upright with `apply_rotation`).

        Frames are transformed on worker threads (PIL and numpy release the GIL) while video files keep decoding.
        """
        table = _rescale_normalize_table(do_rescale, rescale_factor, do_normalize, image_mean, image_std)
        transform = partial(
            _transform_frame,
            resize_size=size if do_resize else None,
            resample=resample,
            crop_size=crop_size if do_center_crop else None,
            table=table,
        )
        # Sampling at a rate gives a variable length that is not padded (the original's num_frames=None mode).
        length = None if fps is not None else (num_frames if num_frames is not None else self.num_frames)
        length = length if max_frames is None or length is None else min(length, max_frames)
        decoding = any(isinstance(video, PyAVVideo) for video in videos)
        workers = worker_threads(decoding)
        pool = ThreadPoolExecutor(max_workers=workers) if workers else _InlineExecutor()
        try:
            futures = [
                self._submit_frames(pool, transform, video, length, max_frames, apply_rotation) for video in videos
            ]
        finally:
            pool.shutdown()
        pixel_values = [torch.from_numpy(np.stack([future.result() for future in video])) for video in futures]
        if return_tensors is not None and len({tuple(video.shape) for video in pixel_values}) > 1:
            shapes = [tuple(video.shape) for video in pixel_values]
            raise ValueError(
                f"The videos of this batch have different shapes {shapes} and cannot be stacked. Sample the same "
                "`num_frames` from each (frame lists are used as given), or process them one at a time."
            )
        return BatchFeature(data={"pixel_values_videos": pixel_values}, tensor_type=return_tensors)

    @staticmethod
    def _submit_frames(
        pool, transform: Callable, video, length: int | None, max_frames: int | None, apply_rotation: bool = True
    ) -> list[Future]:
        """Queue the transform of every kept frame of one video (decoding it meanwhile), then of its padding."""
        if isinstance(video, PyAVVideo):
            video.apply_rotation = apply_rotation  # the metadata then gives the size of the frames as processed
            transform = partial(transform, upright=apply_rotation)
            indices = video.indices[:max_frames]
            submitted = {}
            for index, frame in video.decode(indices):
                submitted[index] = pool.submit(transform, frame)
            futures = [submitted[index] for index in indices]
            frame_shape, frame_dtype = rgb_shape(frame, apply_rotation), np.uint8
        else:
            if max_frames is not None and len(video) > max_frames:
                logger.warning_once(f"Videos are cut to their first `max_frames`={max_frames} frames.")
            futures = [pool.submit(transform, frame) for frame in video[:max_frames]]
            frame_shape, frame_dtype = video[-1].shape, video[-1].dtype  # (H, W, 3) uint8 RGB arrays by now
        padding = max(0, (length or 0) - len(futures))
        if padding:  # black frames shaped like the video's frames, through the same steps
            futures += [pool.submit(transform, np.zeros(frame_shape, frame_dtype))] * padding
        return futures


__all__ = ["VideoLlama2VideoProcessor"]
