# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Reading videos for VideoLLaMA2: PyAV for video files, PIL for GIFs and folders of frame images, and the sorting
of what users pass (paths, URLs, bytes, file objects, arrays, frame lists, batches) into one entry per video.

The PyAV reader indexes packets first (decord's frame numbering), seeks to the key frame before each wanted frame and
lets FFmpeg skip the non-reference frames nobody wants, so that the wanted frames come out bit-identical to a full
decode while most of the video is never decoded. Decoded frames are yielded one by one and still in the decoder's
format, so that the decoding thread only decodes and the caller converts and processes each frame elsewhere.
"""

import bisect
import io
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import PIL.Image
import torch
from transformers.utils import logging
from transformers.video_utils import VideoMetadata


logger = logging.get_logger(__name__)

# The original reads GIFs at an assumed 25 fps and folders of frame images at an assumed 3 fps.
GIF_FPS = 25.0
FRAME_FOLDER_FPS = 3.0

# FFmpeg frame threading pays off for large frames only: for small ones its pipeline start-up, paid again after every
# seek, costs more than it saves (measured on 2 cores: 640x360 H.264 10-20% slower with it, 1080p 25% faster).
# Below this size, decode with slice threads (FFmpeg's default), which help whenever a stream has several slices.
FRAME_THREADING_MIN_PIXELS = 1280 * 720


class MediaUnavailableError(OSError, ValueError):
    """Media that cannot be read from where it was said to be (a failed download, a missing file). An `OSError` like
    any I/O failure, and a `ValueError`: servers answer those with 400 (the request's fault), not 500."""


class MediaNotFoundError(MediaUnavailableError, FileNotFoundError):
    """No media file at the path given."""


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


def rgb_array(frame) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a decoded PyAV frame.

    `frame.to_ndarray(format="rgb24")` builds a new FFmpeg conversion context for every frame (~2 ms at 640x360);
    one reformatter per thread builds it once per frame size, with the same conversion, hence the same pixels.
    """
    reformatter = getattr(_thread_state, "reformatter", None)
    if reformatter is None:
        from av.video.reformatter import VideoReformatter

        reformatter = _thread_state.reformatter = VideoReformatter()
    return reformatter.reformat(frame, format="rgb24").to_ndarray()


def _set_threading(stream) -> None:
    large = stream.codec_context.width * stream.codec_context.height >= FRAME_THREADING_MIN_PIXELS
    stream.thread_type = "AUTO" if large else "SLICE"


class PyAVVideo:
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
            if container.format.name == "image2" or container.format.name.endswith("_pipe"):
                raise ValueError(
                    f"{name} is a still image, not a video: pass it as an image (a video would be padded with black "
                    "frames), or several images as a list of frames."
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
        self.indices = frame_indices_to_read(sample_indices_fn, self.metadata, max_frames)
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

    def decode(self, indices: list[int]) -> Iterator[tuple]:
        """Yield `(index, decoded frame)` once for each distinct index, as the frames come out of the decoder.

        Frames are PyAV frames in the stream's pixel format: `rgb_array` converts them, on any thread.
        """
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
        decoded = {index: rgb_array(frame) for index, frame in self.decode(self.indices)}
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
    indices = frame_indices_to_read(sample_indices_fn, metadata, max_frames)
    images = {index: load_image(os.path.join(folder, names[index])) for index in set(indices)}
    metadata.frames_indices = indices
    metadata.height, metadata.width = images[indices[0]].shape[:2]
    return [images[index] for index in indices], metadata


def load_image(path) -> np.ndarray:
    with PIL.Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def download(url: str) -> bytes:
    """The bytes at `url`, or one clear error at once (no network, 404, ...): no retry loop."""
    from huggingface_hub.utils import httpx

    try:
        response = httpx.get(url, follow_redirects=True, timeout=30)
        response.raise_for_status()
    except httpx.HTTPError as error:
        raise MediaUnavailableError(
            f"Could not download {url} ({error}). Download it yourself and pass the local file path (or its bytes) "
            "instead."
        ) from error
    return response.content


def _open_encoded(source, name: str, sample_indices_fn: Callable | None, max_frames: int | None):
    """One encoded video (path or file object): GIFs are read with PIL into frames, other videos are indexed with
    PyAV and decoded later. Returns `(frames or PyAVVideo, metadata)`."""
    if isinstance(source, str):
        with open(source, "rb") as file:
            head = file.read(6)
    else:
        position = source.tell()
        head = source.read(6)
        source.seek(position)
    if head in (b"GIF87a", b"GIF89a"):
        return _read_gif(source, sample_indices_fn, max_frames)
    video = PyAVVideo(source, name, sample_indices_fn, max_frames)
    return video, video.metadata


_IMAGE_FILE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


def is_video_source(video) -> bool:
    """Something still to be decoded: a path, URL, encoded bytes or a file object (of a video or of audio)."""
    return isinstance(video, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(video, "read")


def media_source(source, what: str, fetch: Callable[[str], bytes] | None = None) -> tuple[object, str]:
    """`(something PyAV or PIL reads, its name for messages)` of a source `is_video_source` accepts: URLs are
    downloaded (with `fetch`, `download` by default), bytes wrapped in a file object; a local path comes back as a
    `str`, unchecked (the caller checks it). `what` ("video", "audio") names bytes and unnamed file objects."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if path.startswith(("http://", "https://")):
            return io.BytesIO((fetch or download)(path)), path
        return path, path
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source), f"the {what} bytes"
    return source, getattr(source, "name", f"the {what} file object")


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


def open_video(video, sample_indices_fn: Callable | None, max_frames: int | None):
    """`(frames or a PyAVVideo still to decode, metadata)` of a path, URL, frame folder, bytes or file object."""
    if not is_video_source(video):
        raise TypeError(f"Cannot read a video from {type(video).__name__}; pass a path, URL, bytes or file object.")
    source, name = media_source(video, "video")
    if isinstance(source, str):  # a local path
        if os.path.isdir(source):
            return _read_frame_folder(source, sample_indices_fn, max_frames)
        if not os.path.isfile(source):
            raise MediaNotFoundError(f"No video file or frame folder at {source}. Check the path.")
    return _open_encoded(source, name, sample_indices_fn, max_frames)


__all__ = [
    "MediaNotFoundError",
    "MediaUnavailableError",
    "PyAVVideo",
    "frame_indices_to_read",
    "is_video_source",
    "load_image",
    "media_source",
    "open_video",
    "rgb_array",
    "split_videos",
]
