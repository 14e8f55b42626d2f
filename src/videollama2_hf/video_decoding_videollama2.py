# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Reading videos for VideoLLaMA2: PyAV for video files, PIL for GIFs and folders of frame images, and the sorting
of what users pass (paths, URLs, `data:` URIs, bytes, file objects, arrays, frame lists, batches) into one entry per
video.

The PyAV reader indexes packets first (decord's frame numbering), seeks to the key frame before each wanted frame and
lets FFmpeg skip the non-reference frames nobody wants, so that the wanted frames come out bit-identical to a full
decode while most of the video is never decoded. Decoded frames are yielded one by one and still in the decoder's
format, so that the decoding thread only decodes and the caller converts and processes each frame elsewhere.

Frames come out upright: a video whose container says to rotate it (phones record portrait videos as rotated
landscape frames) is turned as players show it, unless `apply_rotation=False` asks for the coded frames, which is
what the original's decord returned.
"""

import bisect
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import PIL.Image
import torch
from transformers.utils import logging
from transformers.video_utils import VideoMetadata

from .image_processing_videollama2 import load_image, open_image
from .media_sources_videollama2 import MediaNotFoundError, check_not_empty, is_video_source, media_source


logger = logging.get_logger(__name__)

# The original reads GIFs at an assumed 25 fps and folders of frame images at an assumed 3 fps.
GIF_FPS = 25.0
FRAME_FOLDER_FPS = 3.0

# FFmpeg frame threading pays off for large frames only: for small ones its pipeline start-up, paid again after every
# seek, costs more than it saves (measured on 2 cores: 640x360 H.264 10-20% slower with it, 1080p 25% faster).
# Below this size, decode with slice threads (FFmpeg's default), which help whenever a stream has several slices.
FRAME_THREADING_MIN_PIXELS = 1280 * 720


def frame_indices_to_read(
    sample_indices_fn: Callable | None, metadata: VideoMetadata, max_frames: int | None
) -> list[int]:
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


def ffmpeg_reason(error) -> str:
    """FFmpeg's reason in words ("Invalid data found when processing input"), without the error number and file name
    PyAV puts around it."""
    return getattr(error, "strerror", None) or str(error) or type(error).__name__


@contextmanager
def ffmpeg_errors(name: str):
    """FFmpeg errors become one-line `ValueError`s naming the file and the fix."""
    av = _import_av()
    try:
        yield
    except av.FFmpegError as error:
        raise ValueError(
            f"Could not decode {name} ({ffmpeg_reason(error)}): the file is corrupt, truncated, unreadable or not a "
            "video FFmpeg can read. Re-encode it (e.g. to H.264 MP4) or pass its frames as an array."
        ) from error


def check_frame_size(width: int, height: int, name: str) -> None:
    """Refuse frames larger than Pillow's decompression-bomb limit (twice `PIL.Image.MAX_IMAGE_PIXELS`), the same
    limit images have: a few kilobytes of a crafted file must not make every frame cost gigabytes."""
    limit = PIL.Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > 2 * limit:
        raise ValueError(
            f"{name} has {width}x{height} frames ({width * height / 1e6:.0f} megapixels), over the "
            f"{2 * limit / 1e6:.0f}-megapixel limit against decompression bombs. Downscale it first, or raise "
            "`PIL.Image.MAX_IMAGE_PIXELS` if you trust the file."
        )


def _video_stream(container, name: str):
    """The first video stream of an opened container, or a one-line error saying what the file is instead."""
    if not container.streams.video:
        kind = " (an audio file?)" if container.streams.audio else ""
        raise ValueError(
            f"{name} has no video stream{kind}. Pass a video file, an image folder or frames"
            + (", and audio as audio (`audio=`, `--audio`)." if kind else ".")
        )
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        raise ValueError(
            f"{name} is a still image, not a video: pass it as an image (a video would be padded with black "
            "frames), or several images as a list of frames."
        )
    stream = container.streams.video[0]
    check_frame_size(stream.codec_context.width, stream.codec_context.height, name)
    return stream


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


_thread_state = threading.local()


def quarter_turns(frame) -> int:
    """Counter-clockwise quarter turns that show a decoded PyAV frame upright, from the display matrix its container
    attaches (FFmpeg's convention, as `ffmpeg` and players apply it); other angles than multiples of 90 are ignored."""
    rotation = frame.rotation or 0
    if rotation % 90:
        logger.warning_once(f"Ignoring a display rotation of {rotation} degrees, which is not a multiple of 90.")
        return 0
    return rotation // 90 % 4


def rgb_array(frame, upright: bool = True) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a decoded PyAV frame, turned upright unless `upright=False` (the coded frame).

    `frame.to_ndarray(format="rgb24")` builds a new FFmpeg conversion context for every frame (~2 ms at 640x360);
    one reformatter per thread builds it once per frame size, with the same conversion, hence the same pixels.
    """
    reformatter = getattr(_thread_state, "reformatter", None)
    if reformatter is None:
        from av.video.reformatter import VideoReformatter

        reformatter = _thread_state.reformatter = VideoReformatter()
    pixels = reformatter.reformat(frame, format="rgb24").to_ndarray()
    turns = quarter_turns(frame) if upright else 0
    return np.ascontiguousarray(np.rot90(pixels, turns)) if turns else pixels


def rgb_shape(frame, upright: bool = True) -> tuple[int, int, int]:
    """The shape `rgb_array` gives a decoded PyAV frame."""
    turned = upright and quarter_turns(frame) % 2
    return (frame.width, frame.height, 3) if turned else (frame.height, frame.width, 3)


def _set_threading(stream) -> None:
    large = stream.codec_context.width * stream.codec_context.height >= FRAME_THREADING_MIN_PIXELS
    stream.thread_type = "AUTO" if large else "SLICE"


class PyAVVideo:
    """A video file whose packets are indexed (frame count, timestamps, key frames) but whose frames are decoded later,
    so that the caller can process each frame while the next one decodes.

    Frame `i` is the `i`-th packet in timestamp order, as decord counts. Decoding seeks to the key frame before each
    run of wanted frames and lets FFmpeg skip the non-reference frames nobody wants, which leaves the wanted frames
    bit-identical since nothing references a skipped frame. `apply_rotation`: frames are to be shown upright (see
    `rgb_array`); the metadata's width and height are then the upright ones once a frame has been decoded.
    """

    def __init__(
        self,
        source,
        name: str,
        sample_indices_fn: Callable | None,
        max_frames: int | None,
        apply_rotation: bool = True,
    ):
        self.av = _import_av()
        self.source, self.name, self.apply_rotation = source, name, apply_rotation
        self.start = None if isinstance(source, str) else source.tell()
        self.decoded_frames = 0  # frames FFmpeg decoded so far, to keep long videos cheap
        self._sized_upright = False  # whether the metadata has the size of a decoded (upright) frame yet
        with ffmpeg_errors(self.name), self._open() as container:
            stream = _video_stream(container, name)
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
        self.indices = frame_indices_to_read(sample_indices_fn, self.metadata, max_frames)
        self.metadata.frames_indices = self.indices

    def _open(self):
        if self.start is not None:
            self.source.seek(self.start)
        return self.av.open(self.source)

    def _decoded(self, index: int, frame) -> tuple:
        """`(index, frame)`, with the metadata's size made the upright one at the first frame."""
        if not self._sized_upright:
            self.metadata.height, self.metadata.width = rgb_shape(frame, self.apply_rotation)[:2]
            self._sized_upright = True
        return index, frame

    def decode(self, indices: list[int]) -> Iterator[tuple]:
        """Yield `(index, decoded frame)` once for each distinct index, as the frames come out of the decoder.

        Frames are PyAV frames in the stream's pixel format: `rgb_array(frame, self.apply_rotation)` converts them,
        on any thread.
        """
        wanted = sorted(set(indices))
        done = set()
        with ffmpeg_errors(self.name):
            if None not in self.timestamps and len(set(self.timestamps)) == len(self.timestamps):
                with self._open() as container:
                    try:
                        for index, frame in self._decode_by_timestamp(container, wanted):
                            done.add(index)
                            yield self._decoded(index, frame)
                    except self.av.FFmpegError as error:  # e.g. a container that cannot seek: decode in order below
                        logger.info(f"{self.name}: seeking failed ({ffmpeg_reason(error)}).")
            missing = [index for index in wanted if index not in done]
            if missing:
                logger.info(f"{self.name}: numbering frames in decode order, as its timestamps cannot be used.")
                with self._open() as container:
                    for index, frame in self._decode_in_order(container, missing):
                        done.add(index)
                        yield self._decoded(index, frame)
        missing = [index for index in wanted if index not in done]
        if missing:
            raise ValueError(
                f"Could not decode frames {missing} of {self.name}, which has {len(self.timestamps)} frames: the file "
                "is probably corrupt. Re-encode it or pass its frames as an array."
            )
        logger.debug(f"{self.name}: decoded {self.decoded_frames} frames to keep {len(wanted)}.")

    def frames(self) -> np.ndarray:
        """All sampled frames as a (T, H, W, 3) uint8 array."""
        decoded = {index: rgb_array(frame, self.apply_rotation) for index, frame in self.decode(self.indices)}
        return np.stack([decoded[index] for index in self.indices])

    def _decode_by_timestamp(self, container, wanted: list[int]) -> Iterator:
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
                            yield index, frame
                    if not targets:
                        break
            finally:
                codec.skip_frame = "DEFAULT"

    def _decode_in_order(self, container, wanted: list[int]) -> Iterator:
        """Decode from the start and number frames as they come out: for streams whose timestamps cannot be used."""
        stream = container.streams.video[0]
        _set_threading(stream)
        wanted_set = set(wanted)
        for index, frame in enumerate(container.decode(stream)):
            self.decoded_frames += 1
            if index in wanted_set:
                yield index, frame
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
        indices = sorted(set(frame_indices_to_read(sample_indices_fn, metadata, max_frames)))
        frames = []
        for index in indices:
            gif.seek(index)
            frames.append(np.asarray(gif.convert("RGB")))
    metadata.frames_indices = indices
    return np.stack(frames), metadata


def _frame_file_names(folder: str) -> list[str]:
    """The image files of a frame folder, in sorted-name order; an error when there is none."""
    extensions = PIL.Image.registered_extensions()
    names = sorted(
        entry.name
        for entry in os.scandir(folder)
        if entry.is_file() and os.path.splitext(entry.name)[1].lower() in extensions
    )
    if not names:
        raise ValueError(f"The folder {folder} holds no image files to use as video frames.")
    return names


def _read_frame_folder(
    folder: str, sample_indices_fn: Callable | None, max_frames: int | None
) -> tuple[list[np.ndarray], VideoMetadata]:
    """A folder of frame images in sorted-name order, at the original's assumed 3 fps."""
    names = _frame_file_names(folder)
    metadata = VideoMetadata(
        total_num_frames=len(names),
        fps=FRAME_FOLDER_FPS,
        duration=len(names) / FRAME_FOLDER_FPS,
        video_backend="pillow",
    )
    indices = frame_indices_to_read(sample_indices_fn, metadata, max_frames)
    images = {index: load_image(os.path.join(folder, names[index])) for index in set(indices)}
    metadata.frames_indices = indices
    metadata.height, metadata.width = images[indices[0]].shape[:2]
    return [images[index] for index in indices], metadata


def _head(source, name: str) -> bytes:
    check_not_empty(source, name, "video")
    if isinstance(source, str):
        with open(source, "rb") as file:
            return file.read(6)
    position = source.tell()
    head = source.read(6)
    source.seek(position)
    return head


def _open_encoded(
    source, name: str, sample_indices_fn: Callable | None, max_frames: int | None, apply_rotation: bool = True
):
    """One encoded video (path or file object): GIFs are read with PIL into frames, other videos are indexed with
    PyAV and decoded later. Returns `(frames or PyAVVideo, metadata)`."""
    if _head(source, name) in (b"GIF87a", b"GIF89a"):
        return _read_gif(source, sample_indices_fn, max_frames)
    video = PyAVVideo(source, name, sample_indices_fn, max_frames, apply_rotation)
    return video, video.metadata


_IMAGE_FILE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def _is_frame(item) -> bool:
    return isinstance(item, PIL.Image.Image) or (isinstance(item, (np.ndarray, torch.Tensor)) and item.ndim in (2, 3))


def _is_image_file(item) -> bool:
    return isinstance(item, (str, os.PathLike)) and os.path.splitext(item)[1].lower() in _IMAGE_FILE_EXTENSIONS


def _is_frame_list(item) -> bool:
    """One video given as its frames: images, arrays or image files."""
    return isinstance(item, (list, tuple)) and bool(item) and all(_is_frame(x) or _is_image_file(x) for x in item)


def _is_video(item) -> bool:
    if isinstance(item, (np.ndarray, torch.Tensor)):
        return item.ndim == 4
    if isinstance(item, (list, tuple)):
        return bool(item) and all(_is_frame(frame) or isinstance(frame, (str, os.PathLike)) for frame in item)
    return is_video_source(item)


def split_videos(videos) -> list:
    """One entry per video. A flat list of frames is one video; a list of videos (or a 5-D array) is a batch.

    A list of paths is a batch of videos; a video given as image files is a nested list (`[["f1.jpg", ...]]`).
    `apply_chat_template` groups videos per conversation (`[["a.mp4"], [], [frames]]`, or `[[["f1.jpg", ...]]]`
    for a video given as image files): groups whose items are videos, not frames or image files, are flattened.
    """
    if isinstance(videos, (list, tuple)) and videos and all(isinstance(group, (list, tuple)) for group in videos):
        items = [item for group in videos for item in group]
        if items and not any(_is_frame(item) or _is_image_file(item) for item in items):
            return [video for item in items for video in ([item] if _is_frame_list(item) else split_videos(item))]
    if is_video_source(videos) or _is_frame(videos):
        return [videos if is_video_source(videos) else [videos]]
    if isinstance(videos, (np.ndarray, torch.Tensor)):
        if videos.ndim in (4, 5):
            return [videos] if videos.ndim == 4 else list(videos)
        raise ValueError(f"A video array must be (T, H, W, 3) or a batch (B, T, H, W, 3), got shape {videos.shape}.")
    if isinstance(videos, (list, tuple)) and videos:
        if all(_is_frame(item) for item in videos):
            return [list(videos)]
        if all(_is_video(item) for item in videos):
            return list(videos)
    if isinstance(videos, (list, tuple)) and (
        not videos or any(isinstance(item, (list, tuple)) and not item for item in videos)
    ):
        raise ValueError("A video given as a list of frames holds no frame: pass at least one frame, or a video file.")
    raise TypeError(
        f"Unsupported video input of type {type(videos).__name__}. Pass a path, URL, bytes or file object, a "
        "(T, H, W, 3) uint8 array or tensor, a list of frames (PIL images or arrays), or a list of these."
    )


def _video_source(video) -> tuple[object, str]:
    """`media_source` of a video, with a local path checked to exist."""
    if not is_video_source(video):
        raise TypeError(f"Cannot read a video from {type(video).__name__}; pass a path, URL, bytes or file object.")
    source, name = media_source(video, "video")
    if isinstance(source, str) and not os.path.exists(source):
        raise MediaNotFoundError(f"No video file or frame folder at {source}. Check the path.")
    return source, name


def open_video(video, sample_indices_fn: Callable | None, max_frames: int | None, apply_rotation: bool = True):
    """`(frames or a PyAVVideo still to decode, metadata)` of a path, URL, `data:` URI, frame folder, bytes or file
    object. `apply_rotation`: decoded frames are to be shown upright (see `rgb_array`)."""
    source, name = _video_source(video)
    if isinstance(source, str) and os.path.isdir(source):
        return _read_frame_folder(source, sample_indices_fn, max_frames)
    return _open_encoded(source, name, sample_indices_fn, max_frames, apply_rotation)


def check_video(video) -> None:
    """Raise the one-line error decoding would raise for a video that is missing, empty, not a video or unreadable,
    after reading only its start (up to its first frame): a cheap check before a model loads."""
    source, name = _video_source(video)
    if isinstance(source, str) and os.path.isdir(source):
        _frame_file_names(source)
        return
    start = None if isinstance(source, str) else source.tell()
    try:
        if _head(source, name) in (b"GIF87a", b"GIF89a"):
            open_image(source)
            return
        av = _import_av()
        with ffmpeg_errors(name), av.open(source) as container:
            if next(container.decode(_video_stream(container, name)), None) is None:
                raise ValueError(f"{name} has a video stream without any frame; there is nothing to sample.")
    finally:
        if start is not None:
            source.seek(start)


def is_video_file(source) -> bool:
    """Whether `source` reads as a video with frames (not as a still image): to tell users who pass a video as an
    image where it goes."""
    try:
        check_video(source)
    except (ValueError, OSError):
        return False
    return True


__all__ = [
    "PyAVVideo",
    "check_video",
    "frame_indices_to_read",
    "is_video_file",
    "open_video",
    "rgb_array",
    "split_videos",
]
