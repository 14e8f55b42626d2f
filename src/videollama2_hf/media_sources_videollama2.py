# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Where media come from, for the video, image and audio decoders alike: local paths and `file://` URLs, `http(s)`
URLs (downloaded), `data:` URIs (what OpenAI-style clients send), bytes and file objects, each turned into something
PyAV or PIL reads, with a name for messages.

Media held in memory (downloads, `data:` URIs) are capped at `MAX_MEDIA_BYTES`, so that what a client sends cannot
make a server hold gigabytes: 1 GiB unless the `VIDEOLLAMA2_MAX_MEDIA_BYTES` environment variable says otherwise.
Local files are read from disk and not capped.
"""

import base64
import binascii
import io
import os
from collections.abc import Callable
from urllib.parse import unquote_to_bytes, urlparse
from urllib.request import url2pathname


MAX_MEDIA_BYTES = int(os.environ.get("VIDEOLLAMA2_MAX_MEDIA_BYTES", 2**30))


class MediaTooLargeError(ValueError):
    """A download or `data:` URI larger than `MAX_MEDIA_BYTES`."""


# Media errors are `ValueError`s too: a missing file or a failed download is the caller's to fix, and servers that
# run the processor (`transformers serve`) answer `ValueError`s with 400 and the message, other errors with 500.
class MediaNotFoundError(FileNotFoundError, ValueError):
    """No media file at the path given."""


class MediaDownloadError(OSError, ValueError):
    """A media URL that could not be downloaded."""


def _size(num_bytes: int) -> str:
    return f"{num_bytes} bytes" if num_bytes < 2**20 else f"{num_bytes / 2**20:.1f} MiB"


def _too_large(name: str, size: int, limit: int) -> MediaTooLargeError:
    return MediaTooLargeError(
        f"{name} holds {_size(size)} or more, over the {_size(limit)} limit for media held in memory (downloads, "
        "data: URIs). Save it to a file and pass its path, or raise the limit with the VIDEOLLAMA2_MAX_MEDIA_BYTES "
        "environment variable."
    )


def download(url: str) -> bytes:
    """The bytes at `url`, or one clear error at once (no network, 404, more than `MAX_MEDIA_BYTES`): no retry loop,
    and never more than the limit read."""
    from huggingface_hub.utils import httpx

    limit, chunks, size = MAX_MEDIA_BYTES, [], 0
    try:
        with httpx.stream("GET", url, follow_redirects=True, timeout=30) as response:
            response.raise_for_status()
            declared = int(response.headers.get("content-length") or 0)
            if declared > limit:
                raise _too_large(url, declared, limit)
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    raise _too_large(url, size, limit)
                chunks.append(chunk)
    except httpx.HTTPError as error:
        raise MediaDownloadError(
            f"Could not download {url} ({error}). Download it yourself and pass the local file path (or its bytes) "
            "instead."
        ) from error
    return b"".join(chunks)


def _data_uri(uri: str, what: str) -> tuple[io.BytesIO, str]:
    """The bytes of a `data:[<type>][;base64],<data>` URI, within `MAX_MEDIA_BYTES`, and its name for messages (the
    URI itself may be megabytes long)."""
    header, comma, payload = uri.partition(",")
    name = f"the {what} data: URI ({header[5:].split(';')[0] or 'no media type'})"
    if not comma:
        raise ValueError(f"{name} has no ',' before its data: write it as data:<media type>;base64,<data>.")
    if header.endswith(";base64"):
        payload = "".join(payload.split())
        size = len(payload) // 4 * 3 - (len(payload) - len(payload.rstrip("=")))  # known before decoding anything
        if size > MAX_MEDIA_BYTES:
            raise _too_large(name, size, MAX_MEDIA_BYTES)
        try:
            data = base64.b64decode(payload, validate=True)
        except binascii.Error as error:
            raise ValueError(f"{name} is not valid base64 ({error}).") from None
    else:
        data = unquote_to_bytes(payload)
        if len(data) > MAX_MEDIA_BYTES:
            raise _too_large(name, len(data), MAX_MEDIA_BYTES)
    return io.BytesIO(data), name


def _file_url_path(url: str) -> str:
    """The local path of a `file://` URL: `file:///path` or `file://localhost/path`, percent-escapes decoded."""
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ValueError(f"{url} names a file on another machine ({parsed.netloc}); only local file:// URLs are read.")
    return url2pathname(parsed.path)


def is_video_source(video) -> bool:
    """Something still to be decoded: a path, URL, encoded bytes or a file object (of a video, an image or audio)."""
    return isinstance(video, (str, os.PathLike, bytes, bytearray, memoryview)) or hasattr(video, "read")


def media_source(source, what: str, fetch: Callable[[str], bytes] | None = None) -> tuple[object, str]:
    """`(something PyAV or PIL reads, its name for messages)` of a source `is_video_source` accepts: URLs are
    downloaded (with `fetch`, `download` by default) and `data:` URIs decoded, both within `MAX_MEDIA_BYTES`; bytes
    are wrapped in a file object; a local path (or the path of a `file://` URL) comes back as a `str`, unchecked (the
    caller checks it). `what` ("video", "image", "audio") names bytes, URIs and unnamed file objects."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if path.startswith(("http://", "https://")):
            return io.BytesIO((fetch or download)(path)), path
        if path.startswith("data:"):
            return _data_uri(path, what)
        if path.startswith("file://"):
            path = _file_url_path(path)
        return path, path
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(source), f"the {what} bytes"
    return source, getattr(source, "name", f"the {what} file object")


def check_not_empty(source, name: str, what: str) -> None:
    """A one-line error for an empty file, bytes or file object (`source` as `media_source` returns it), which
    decoders would report as invalid data."""
    if isinstance(source, str):
        empty = os.path.getsize(source) == 0
    else:
        position = source.tell()
        empty = not source.read(1)
        source.seek(position)
    if empty:
        raise ValueError(f"{name} is empty (0 bytes): there is no {what} in it. Check the file.")


__all__ = [
    "MAX_MEDIA_BYTES",
    "MediaDownloadError",
    "MediaNotFoundError",
    "MediaTooLargeError",
    "check_not_empty",
    "download",
    "is_video_source",
    "media_source",
]
