# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Video processor for VideoLLaMA2: the original frame sampler, fast PyAV decoding, PIL-exact pixels.

The original `process_video` decodes with decord, picks the middle frame of `num_frames` equal segments, pads short
clips with black frames, keeps at most 32 frames and runs the vision tower's slow (PIL) image processor on every
frame. This module reproduces those frames and pixels bit for bit while decoding far less of each video: it reads
the packet index first, seeks to the key frame before each wanted frame, lets FFmpeg skip non-reference frames it
does not need, converts only the kept frames to RGB and resizes each on a worker thread while the next one decodes.
"""

import bisect
import io
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from numbers import Real

import numpy as np
import PIL.Image
import torch
from transformers.image_processing_backends import PilBackend
from transformers.image_processing_utils import BatchFeature
from transformers.image_utils import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ChannelDimension,
    PILImageResampling,
    SizeDict,
)
from transformers.processing_utils import Unpack, VideosKwargs
from transformers.utils import TensorType, logging
from transformers.video_processing_utils import BaseVideoProcessor
from transformers.video_utils import VideoMetadata


logger = logging.get_logger(__name__)

# The original reads GIFs at an assumed 25 fps and folders of frame images at an assumed 3 fps.
GIF_FPS = 25.0
FRAME_FOLDER_FPS = 3.0

# FFmpeg frame threading pays off for large frames only: for small ones its pipeline start-up, paid again after every
# seek, costs more than it saves (measured on 2 cores: 640x360 H.264 10-20% slower with it, 1080p 25% faster).
# Below this size, decode with slice threads (FFmpeg's default), which help whenever a stream has several slices.
FRAME_THREADING_MIN_PIXELS = 1280 * 720

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
    """

    max_frames: int | None
    start_time: int | float | None
    end_time: int | float | None


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


def _transform_frame(
    frame: np.ndarray,
    resize_size: SizeDict | None,
    resample,
    crop_size: SizeDict | None,
    table: np.ndarray | None,
) -> np.ndarray:
    """Resize, center-crop, rescale and normalize one (H, W, 3) uint8 frame exactly as the PIL image processors do."""
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


def _frame_indices(sample_indices_fn: Callable | None, metadata: VideoMetadata, max_frames: int | None) -> list[int]:
    """Indices to read: the sampler's, or the first `max_frames` frames when sampling is off."""
    total = metadata.total_num_frames
    if sample_indices_fn is None:
        return list(range(total if max_frames is None else min(total, max_frames)))
    indices = np.asarray(sample_indices_fn(metadata=metadata)).astype(np.int64).ravel()
    if indices.size == 0 or indices.min() < 0 or indices.max() >= total:
        raise ValueError(f"Sampled frame indices {indices.tolist()} are outside this {total}-frame video.")
    return indices.tolist()


def _import_av():
    try:
        import av
    except ImportError as error:
        raise ImportError("Decoding video files needs PyAV: `pip install av`.") from error
    return av


def _index_packets(container, stream) -> tuple[list, list]:
    """Presentation timestamps of every video packet, and those of key frames, without decoding anything.

    decord counts frames the same way (one per packet, ordered by timestamp), which makes indices match it.
    """
    timestamps, keyframes = [], []
    for packet in container.demux(stream):
        if packet.size == 0:  # the demuxer's end-of-stream marker
            continue
        timestamps.append(packet.pts)
        if packet.is_keyframe:
            keyframes.append(packet.pts)
    return timestamps, keyframes


def _set_threading(stream) -> None:
    large = stream.codec_context.width * stream.codec_context.height >= FRAME_THREADING_MIN_PIXELS
    stream.thread_type = "AUTO" if large else "SLICE"


class _PyAVVideo:
    """A video file whose packets are indexed (frame count, timestamps, key frames) but whose frames are decoded later,
    so that the caller can process each frame while the next one decodes.

    Frame `i` is the `i`-th packet in timestamp order, as decord counts. Decoding seeks to the key frame before each
    run of wanted frames and lets FFmpeg skip the non-reference frames nobody wants, which leaves the wanted frames
    bit-identical since nothing references a skipped frame.
    """

    def __init__(self, source, name: str, sample_indices_fn: Callable | None, max_frames: int | None):
        self.av = _import_av()
        self.source, self.name = source, name
        self.start = None if isinstance(source, str) else source.tell()
        self.decoded_frames = 0  # frames FFmpeg decoded so far, to keep long videos cheap
        with self._ffmpeg_errors(), self._open() as container:
            if not container.streams.video:
                raise ValueError(
                    f"{name} has no video stream (an audio-only file?). Pass a video file, an image folder or frames."
                )
            stream = container.streams.video[0]
            self.timestamps, self.keyframes = _index_packets(container, stream)
            if not self.timestamps:
                raise ValueError(f"{name} has a video stream without any frame; there is nothing to sample.")
            if stream.frames and stream.frames != len(self.timestamps):
                logger.warning(
                    f"{name}: the container lists {stream.frames} frames but only {len(self.timestamps)} can be read "
                    "(a truncated file?); sampling from those."
                )
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else None
            self.metadata = VideoMetadata(
                total_num_frames=len(self.timestamps),
                fps=fps,
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                duration=len(self.timestamps) / fps if fps else None,
                video_backend="pyav",
            )
        self.indices = _frame_indices(sample_indices_fn, self.metadata, max_frames)
        self.metadata.frames_indices = self.indices

    def _open(self):
        if self.start is not None:
            self.source.seek(self.start)
        return self.av.open(self.source)

    @contextmanager
    def _ffmpeg_errors(self):
        try:
            yield
        except self.av.FFmpegError as error:
            raise ValueError(
                f"Could not decode {self.name} ({error}): the file is corrupt, truncated, unreadable or not a video "
                "FFmpeg can read. Re-encode it (e.g. to H.264 MP4) or pass its frames as an array."
            ) from error

    def decode(self, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Yield `(index, RGB frame)` once for each distinct index, as the frames come out of the decoder."""
        wanted = sorted(set(indices))
        done = set()
        with self._ffmpeg_errors():
            if None not in self.timestamps and len(set(self.timestamps)) == len(self.timestamps):
                with self._open() as container:
                    try:
                        for index, frame in self._decode_by_timestamp(container, wanted):
                            done.add(index)
                            yield index, frame
                    except self.av.FFmpegError as error:  # e.g. a container that cannot seek: decode in order below
                        logger.info(f"{self.name}: seeking failed ({error}).")
            missing = [index for index in wanted if index not in done]
            if missing:
                logger.info(f"{self.name}: numbering frames in decode order, as its timestamps cannot be used.")
                with self._open() as container:
                    for index, frame in self._decode_in_order(container, missing):
                        done.add(index)
                        yield index, frame
        missing = [index for index in wanted if index not in done]
        if missing:
            raise ValueError(
                f"Could not decode frames {missing} of {self.name}, which has {len(self.timestamps)} frames: the file "
                "is probably corrupt. Re-encode it or pass its frames as an array."
            )
        logger.debug(f"{self.name}: decoded {self.decoded_frames} frames to keep {len(wanted)}.")

    def frames(self) -> np.ndarray:
        """All sampled frames as a (T, H, W, 3) uint8 array."""
        decoded = dict(self.decode(self.indices))
        return np.stack([decoded[index] for index in self.indices])

    def _decode_by_timestamp(self, container, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """One seek per key-frame interval holding wanted frames, then decode forward until they are all out."""
        stream = container.streams.video[0]
        _set_threading(stream)
        codec = stream.codec_context
        order = sorted(self.timestamps)
        rank = {pts: index for index, pts in enumerate(order)}
        keyframe_ranks = sorted(rank[pts] for pts in self.keyframes) or [0]
        runs: dict[int, list[int]] = {}  # key frame index -> wanted frames decoded from it
        for index in wanted:
            position = bisect.bisect_right(keyframe_ranks, index) - 1
            runs.setdefault(keyframe_ranks[position] if position >= 0 else 0, []).append(index)
        for keyframe, members in runs.items():
            targets = {order[index]: index for index in members}
            container.seek(order[keyframe], stream=stream, backward=True)  # also flushes the decoder
            try:
                for packet in container.demux(stream):
                    codec.skip_frame = "DEFAULT" if packet.pts in targets else "NONREF"
                    for frame in codec.decode(packet):
                        self.decoded_frames += 1
                        index = targets.pop(frame.pts, None)
                        if index is not None:
                            yield index, frame.to_ndarray(format="rgb24")
                    if not targets:
                        break
            finally:
                codec.skip_frame = "DEFAULT"

    def _decode_in_order(self, container, wanted: list[int]) -> Iterator[tuple[int, np.ndarray]]:
        """Decode from the start and number frames as they come out: for streams whose timestamps cannot be used."""
        stream = container.streams.video[0]
        _set_threading(stream)
        wanted_set = set(wanted)
        for index, frame in enumerate(container.decode(stream)):
            self.decoded_frames += 1
            if index in wanted_set:
                yield index, frame.to_ndarray(format="rgb24")
            if index >= wanted[-1]:
                break


def _read_gif(source, sample_indices_fn: Callable | None, max_frames: int | None) -> tuple[np.ndarray, VideoMetadata]:
    """GIF frames at the original's assumed 25 fps. Like the original, a frame sampled twice is kept once."""
    with PIL.Image.open(source) as gif:
        total = getattr(gif, "n_frames", 1)
        metadata = VideoMetadata(
            total_num_frames=total,
            fps=GIF_FPS,
            width=gif.width,
            height=gif.height,
            duration=total / GIF_FPS,
            video_backend="pillow",
        )
        indices = sorted(set(_frame_indices(sample_indices_fn, metadata, max_frames)))
        frames = []
        for index in indices:
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB")))
    metadata.frames_indices = indices
    return np.stack(frames), metadata


def _read_frame_folder(
    folder: str, sample_indices_fn: Callable | None, max_frames: int | None
) -> tuple[list[np.ndarray], VideoMetadata]:
    """A folder of frame images in sorted-name order, at the original's assumed 3 fps."""
    extensions = PIL.Image.registered_extensions()
    names = sorted(
        entry.name
        for entry in os.scandir(folder)
        if entry.is_file() and os.path.splitext(entry.name)[1].lower() in extensions
    )
    if not names:
        raise ValueError(f"The folder {folder} holds no image files to use as video frames.")
    metadata = VideoMetadata(
        total_num_frames=len(names),
        fps=FRAME_FOLDER_FPS,
        duration=len(names) / FRAME_FOLDER_FPS,
        video_backend="pillow",
    )
    indices = _frame_indices(sample_indices_fn, metadata, max_frames)
    images = {index: _load_image(os.path.join(folder, names[index])) for index in set(indices)}
    metadata.frames_indices = indices
    metadata.height, metadata.width = images[indices[0]].shape[:2]
    return [images[index] for index in indices], metadata


def _load_image(path) -> np.ndarray:
    with PIL.Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _download(url: str) -> bytes:
    from huggingface_hub.utils import get_session, httpx

    try:
        response = get_session().get(url, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as error:
        raise OSError(
            f"Could not download the video at {url} ({error}). Download it yourself and pass the local file path "
            "(or its bytes) instead."
        ) from error
    return response.content


def _open_encoded(source, name: str, sample_indices_fn: Callable | None, max_frames: int | None):
    """One encoded video (path or file object): GIFs are read with PIL into frames, other videos are indexed with
    PyAV and decoded later. Returns `(frames or _PyAVVideo, metadata)`."""
    if isinstance(source, str):
        with open(source, "rb") as file:
            head = file.read(6)
    else:
        position = source.tell()
        head = source.read(6)
        source.seek(position)
    if head in (b"GIF87a", b"GIF89a"):
        return _read_gif(source, sample_indices_fn, max_frames)
    video = _PyAVVideo(source, name, sample_indices_fn, max_frames)
    return video, video.metadata


_IMAGE_FILE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def _is_source(video) -> bool:
    """Something still to be decoded: a path, URL, encoded bytes or a file object."""
    return isinstance(video, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(video, "read")


def _is_frame(item) -> bool:
    return isinstance(item, PIL.Image.Image) or (isinstance(item, (np.ndarray, torch.Tensor)) and item.ndim in (2, 3))


def _is_image_file(item) -> bool:
    return isinstance(item, (str, os.PathLike)) and os.path.splitext(item)[1].lower() in _IMAGE_FILE_EXTENSIONS


def _is_video(item) -> bool:
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return item.ndim == 4
    if isinstance(item, (list, tuple)):
        return bool(item) and all(_is_frame(frame) or isinstance(frame, (str, os.PathLike)) for frame in item)
    return _is_source(item)


def _given_fps(video_metadata, num_videos: int) -> list[float | None]:
    """Frame rate of each video from user metadata (dicts or `VideoMetadata`, one per video); None if not given.

    Only the rate matters here (for time windows on arrays): frame counts come from the videos themselves.
    """
    if video_metadata is None:
        return [None] * num_videos
    if not isinstance(video_metadata, (list, tuple)):
        video_metadata = [video_metadata]
    if len(video_metadata) != num_videos:
        raise ValueError(f"Got {len(video_metadata)} `video_metadata` entries for {num_videos} videos; pass one each.")
    return [None if metadata is None else metadata.get("fps") for metadata in video_metadata]


def _split_videos(videos) -> list:
    """One entry per video. A flat list of frames is one video; a list of videos (or a 5-D array) is a batch.

    A list of paths is a batch of videos; a video given as image files is a nested list (`[["f1.jpg", ...]]`).
    `apply_chat_template` groups videos per conversation (`[["a.mp4"], [], [frames]]`): groups whose items are
    videos, not frames or image files, are flattened.
    """
    if isinstance(videos, (list, tuple)) and videos and all(isinstance(group, (list, tuple)) for group in videos):
        items = [item for group in videos for item in group]
        if items and not any(_is_frame(item) or _is_image_file(item) for item in items):
            return [video for item in items for video in _split_videos(item)]
    if _is_source(videos) or _is_frame(videos):
        return [videos if _is_source(videos) else [videos]]
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        if videos.ndim in (4, 5):
            return [videos] if videos.ndim == 4 else list(videos)
        raise ValueError(f"A video array must be (T, H, W, 3) or a batch (B, T, H, W, 3), got shape {videos.shape}.")
    if isinstance(videos, (list, tuple)) and videos:
        if all(_is_frame(item) for item in videos):
            return [list(videos)]
        if all(_is_video(item) for item in videos):
            return list(videos)
    raise TypeError(
        f"Unsupported video input of type {type(videos).__name__}. Pass a path, URL, bytes or file object, a "
        "(T, H, W, 3) uint8 array or tensor, a list of frames (PIL images or arrays), or a list of these."
    )


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
    are, like the original did. Lists of frames are always used as given. Clips shorter than `num_frames` are padded
    with black frames, then at most `max_frames` frames are kept.

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
    num_frames = 8
    max_frames = 32
    start_time = None
    end_time = None
    valid_kwargs = VideoLlama2VideoProcessorKwargs

    def __init__(self, **kwargs: Unpack[VideoLlama2VideoProcessorKwargs]):
        super().__init__(**kwargs)

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
        window, as in transformers' default sampler.
        """
        num_frames = num_frames if num_frames is not None else self.num_frames
        max_frames = max_frames if max_frames is not None else self.max_frames
        if fps is not None:
            if not metadata.fps:
                raise ValueError("Sampling at `fps` frames per second needs the video's frame rate in its metadata.")
            first, last = frame_window(metadata.total_num_frames, metadata.fps, start_time, end_time)
            num_frames = max(1, int((last - first + 1) / metadata.fps * fps))
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
        video, metadata = self._open_source(video_url_or_urls, sample_indices_fn)
        return (video.frames() if isinstance(video, _PyAVVideo) else video), metadata

    def _open_source(self, video, sample_indices_fn: Callable | None):
        """`(frames or a _PyAVVideo still to decode, metadata)` of a path, URL, folder, bytes or file object."""
        open_encoded = partial(_open_encoded, sample_indices_fn=sample_indices_fn, max_frames=self.max_frames)
        if isinstance(video, (str, os.PathLike)):
            path = os.fspath(video)
            if path.startswith(("http://", "https://")):
                return open_encoded(io.BytesIO(_download(path)), path)
            if os.path.isdir(path):
                return _read_frame_folder(path, sample_indices_fn, self.max_frames)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"No video file or frame folder at {path}. Check the path.")
            return open_encoded(path, path)
        if isinstance(video, (bytes, bytearray, memoryview)):
            return open_encoded(io.BytesIO(video), "the video bytes")
        if hasattr(video, "read"):
            return open_encoded(video, getattr(video, "name", "the video file object"))
        raise TypeError(f"Cannot read a video from {type(video).__name__}; pass a path, URL, bytes or file object.")

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
        videos = _split_videos(videos)
        given_fps = _given_fps(video_metadata, len(videos))
        decoded_videos, metadata_list = [], []
        for video, fps in zip(videos, given_fps):
            if _is_source(video):
                frames, metadata = self._open_source(video, sample_indices_fn if do_sample_frames else None)
            elif isinstance(video, (list, tuple)):  # frames, used as given
                frames = [_load_image(frame) if isinstance(frame, (str, os.PathLike)) else frame for frame in video]
                metadata = VideoMetadata(
                    total_num_frames=len(frames), fps=fps, frames_indices=list(range(len(frames)))
                )
            else:  # a (T, ...) array or tensor: the frame axis is first whatever the channel layout
                if len(video) == 0:
                    raise ValueError("The video array has no frames.")
                metadata = VideoMetadata(total_num_frames=len(video), fps=fps)
                sampler = sample_indices_fn if do_sample_frames else None
                metadata.frames_indices = _frame_indices(sampler, metadata, self.max_frames)
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
            if not isinstance(video, _PyAVVideo):
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
        return_tensors: str | TensorType | None = None,
        **kwargs,
    ) -> BatchFeature:
        """Keep `max_frames`, pad to `num_frames` with black frames, then the PIL image processor's steps per frame.

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
        with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as pool:
            futures = [self._submit_frames(pool, transform, video, length, max_frames) for video in videos]
        pixel_values = [torch.from_numpy(np.stack([future.result() for future in video])) for video in futures]
        if return_tensors is not None and len({tuple(video.shape) for video in pixel_values}) > 1:
            shapes = [tuple(video.shape) for video in pixel_values]
            raise ValueError(
                f"The videos of this batch have different shapes {shapes} and cannot be stacked. Sample the same "
                "`num_frames` from each (frame lists are used as given), or process them one at a time."
            )
        return BatchFeature(data={"pixel_values_videos": pixel_values}, tensor_type=return_tensors)

    @staticmethod
    def _submit_frames(pool, transform: Callable, video, length: int | None, max_frames: int | None) -> list[Future]:
        """Queue the transform of every kept frame of one video (decoding it meanwhile), then of its padding."""
        if isinstance(video, _PyAVVideo):
            indices = video.indices[:max_frames]
            submitted = {}
            for index, frame in video.decode(indices):
                submitted[index] = pool.submit(transform, frame)
            futures, last_frame = [submitted[index] for index in indices], frame
        else:
            if max_frames is not None and len(video) > max_frames:
                logger.warning_once(f"Videos are cut to their first `max_frames`={max_frames} frames.")
            futures, last_frame = [pool.submit(transform, frame) for frame in video[:max_frames]], video[-1]
        padding = max(0, (length or 0) - len(futures))
        if padding:  # black frames shaped like the video's frames, through the same steps
            futures += [pool.submit(transform, np.zeros_like(last_frame))] * padding
        return futures


__all__ = ["VideoLlama2VideoProcessor"]
