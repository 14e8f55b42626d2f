"""Videos from the wild: phone videos whose container says to rotate them, files that are empty, garbage or not
videos, and every source a client sends (`data:` URIs, `file://` URLs, downloads), with their size limits.

Every video is generated here with PyAV (a few frames of 64x48); a rotated one gets its rotation the way phones
write it, in the matrix of its MP4 track header, independently of what the PyAV version can write. Downloads come
from a real HTTP server on the loopback interface; nothing is mocked.
"""

import base64
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import av
import numpy as np
import PIL.Image
import pytest

from videollama2_hf import media_sources_videollama2
from videollama2_hf.media_sources_videollama2 import MediaTooLargeError, download
from videollama2_hf.video_decoding_videollama2 import check_video, open_video
from videollama2_hf.video_processing_videollama2 import VideoLlama2VideoProcessor


HEIGHT, WIDTH, NUM_FRAMES = 64, 48, 8  # the upright (portrait) picture


def _picture(index: int) -> np.ndarray:
    """An upright portrait frame with a block in each corner of its own colour, so that any turn or flip shows."""
    frame = np.full((HEIGHT, WIDTH, 3), 40 + 10 * index, np.uint8)
    frame[:16, :16] = (250, 30, 30)  # top left: red
    frame[:16, -16:] = (30, 250, 30)  # top right: green
    frame[-16:, :16] = (30, 30, 250)  # bottom left: blue
    return frame


def _write_video(path: Path, frames: list[np.ndarray]) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10, options={"qp": "0", "preset": "ultrafast"})
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv444p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def _set_track_matrix(path: Path, a: int, b: int, c: int, d: int) -> None:
    """Write the display matrix [a b 0; c d 0; 0 0 1] into the MP4 track header, as phones record rotation."""
    data = bytearray(path.read_bytes())
    box = data.index(b"tkhd") + 4
    matrix = box + (40 if data[box] == 0 else 52)  # after version, flags, times, track id, duration, layer, volume
    struct.pack_into(">iii", data, matrix, a << 16, b << 16, 0)
    struct.pack_into(">iii", data, matrix + 12, c << 16, d << 16, 0)
    path.write_bytes(bytes(data))


def _coded_frames(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _pixels(processor, video, **kwargs) -> np.ndarray:
    """(T, H, W, 3) uint8 frames as the processor hands them to the model (resizing and scaling off)."""
    processed = processor(video, return_tensors="pt", **kwargs)["pixel_values_videos"][0]
    return processed.permute(0, 2, 3, 1).numpy()


RAW = {"do_resize": False, "do_center_crop": False, "do_rescale": False, "do_normalize": False}


@pytest.fixture(scope="module")
def plain_video(tmp_path_factory) -> Path:
    return _write_video(tmp_path_factory.mktemp("video") / "clip.mp4", [_picture(i) for i in range(NUM_FRAMES)])


# ----------------------------------------------------------------------------------------------- rotation


# (track matrix, counter-clockwise quarter turns from the upright picture to the coded frames). ISO 14496-12: the
# matrix maps coded to displayed frames; (0, 1, -1, 0) is the "rotate 90" of a phone held upright, whose coded
# frames are the picture turned a quarter counter-clockwise (players turn them back clockwise).
ROTATIONS = [((0, 1, -1, 0), 1), ((-1, 0, 0, -1), 2), ((0, -1, 1, 0), 3)]


@pytest.mark.parametrize("matrix, coded_turns", ROTATIONS, ids=["rotate-90", "rotate-180", "rotate-270"])
def test_rotated_phone_video_comes_out_upright(tmp_path, matrix, coded_turns):
    upright = [_picture(i) for i in range(NUM_FRAMES)]
    path = _write_video(tmp_path / "phone.mp4", [np.ascontiguousarray(np.rot90(f, coded_turns)) for f in upright])
    _set_track_matrix(path, *matrix)
    coded = _coded_frames(path)  # what FFmpeg decodes, and decord returned: the coded frames, sideways
    processor = VideoLlama2VideoProcessor(**RAW)

    frames = _pixels(processor, str(path))
    assert frames.shape == (NUM_FRAMES, HEIGHT, WIDTH, 3)
    # exactly the coded pixels, turned back as the matrix says ...
    np.testing.assert_array_equal(frames, np.stack([np.rot90(frame, -coded_turns) for frame in coded]))
    # ... which is the upright picture (up to the encoder's colour conversion)
    assert np.abs(frames.astype(int) - np.stack(upright)).max() <= 6
    metadata = processor(str(path), return_metadata=True)["video_metadata"][0]
    assert (metadata.height, metadata.width) == (HEIGHT, WIDTH)
    fetched, _ = processor.fetch_videos(str(path))
    np.testing.assert_array_equal(fetched, frames)

    # the original's unrotated frames, on request: per call, or saved with the processor
    np.testing.assert_array_equal(_pixels(processor, str(path), apply_rotation=False), np.stack(coded))
    saved = tmp_path / "saved"
    VideoLlama2VideoProcessor(**RAW, apply_rotation=False).save_pretrained(saved)
    np.testing.assert_array_equal(_pixels(VideoLlama2VideoProcessor.from_pretrained(saved), str(path)), coded)
    video, metadata = open_video(str(path), None, None, apply_rotation=False)
    np.testing.assert_array_equal(video.frames(), np.stack(coded))


def test_rotation_keeps_the_padding_frames_upright(tmp_path):
    """Short clips are padded with black frames of the processed frames' size: the upright size."""
    path = _write_video(tmp_path / "short.mp4", [np.ascontiguousarray(np.rot90(_picture(0), 1))] * 3)
    _set_track_matrix(path, 0, 1, -1, 0)
    processor = VideoLlama2VideoProcessor(**RAW, num_frames=4, max_frames=None)
    frames = _pixels(processor, str(path), do_sample_frames=False)
    assert frames.shape == (4, HEIGHT, WIDTH, 3) and not frames[3].any()


# ----------------------------------------------------------------------------------------- unreadable files


def test_empty_garbage_and_audio_files_give_one_sentence_without_ffmpeg_error_numbers(tmp_path, media_dir):
    processor = VideoLlama2VideoProcessor()
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    cases = [
        (empty, r"^\S*empty.mp4 is empty \(0 bytes\): there is no video in it"),
        (b"", r"^the video bytes is empty \(0 bytes\)"),
        (garbage, r"^Could not decode \S*garbage.mp4 \(Invalid data found when processing input\)"),
        (media_dir / "bird-twitter-car.wav", r"has no video stream \(an audio file\?\).*audio"),
    ]
    for video, message in cases:
        for read in (processor, check_video):
            with pytest.raises(ValueError, match=message) as error:
                read(str(video) if isinstance(video, Path) else video)
            assert "Errno" not in str(error.value) and "\n" not in str(error.value)


def test_check_video_reads_only_the_start(plain_video, tmp_path):
    check_video(str(plain_video))  # a readable video passes
    cut = tmp_path / "header-only.mp4"
    data = plain_video.read_bytes()
    cut.write_bytes(data[: data.index(b"mdat") + 4])  # a header whose frames are gone
    with pytest.raises(ValueError, match="Could not decode|without any frame"):
        check_video(str(cut))


def test_frames_over_the_decompression_bomb_limit_are_refused(plain_video, monkeypatch):
    """The limit Pillow sets for images (twice MAX_IMAGE_PIXELS) applies to video frames too."""
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"48x64 frames .* over the .* limit against decompression bombs"):
        VideoLlama2VideoProcessor()(str(plain_video))


# ------------------------------------------------------------------------------------------------ sources


def test_data_uris_and_file_urls_read_like_the_path(plain_video, tmp_path):
    processor = VideoLlama2VideoProcessor(**RAW)
    expected = _pixels(processor, str(plain_video))
    encoded = base64.b64encode(plain_video.read_bytes()).decode()
    spaced = tmp_path / "a folder é"
    spaced.mkdir()
    (spaced / "clip.mp4").write_bytes(plain_video.read_bytes())
    for source in (
        f"data:video/mp4;base64,{encoded}",
        f"data:;base64,{encoded[:40]}\n{encoded[40:]}",  # no media type, wrapped lines
        plain_video.as_uri(),
        f"file://localhost{urllib.request.pathname2url(str(plain_video))}",
        (spaced / "clip.mp4").as_uri(),  # percent-escaped
    ):
        np.testing.assert_array_equal(_pixels(processor, source), expected)


def test_bad_data_uris_and_file_urls(plain_video):
    processor = VideoLlama2VideoProcessor()
    with pytest.raises(ValueError, match=r"^the video data: URI \(video/mp4\) is not valid base64"):
        processor("data:video/mp4;base64,not*base64")
    with pytest.raises(ValueError, match="has no ',' before its data"):
        processor("data:video/mp4;base64")
    with pytest.raises(ValueError, match="names a file on another machine"):
        processor(f"file://elsewhere{plain_video}")
    with pytest.raises(FileNotFoundError, match="No video file or frame folder at"):
        processor(plain_video.with_name("missing.mp4").as_uri())


def test_data_uris_over_the_size_limit_are_refused_before_decoding(plain_video, monkeypatch):
    monkeypatch.setattr(media_sources_videollama2, "MAX_MEDIA_BYTES", 1000)
    uri = "data:video/mp4;base64," + base64.b64encode(plain_video.read_bytes()).decode()
    with pytest.raises(
        MediaTooLargeError, match=r"holds \d+ bytes or more, over the 1000 bytes limit .*VIDEOLLAMA2_MAX"
    ):
        VideoLlama2VideoProcessor()(uri)
    monkeypatch.setattr(media_sources_videollama2, "MAX_MEDIA_BYTES", len(plain_video.read_bytes()))
    assert VideoLlama2VideoProcessor()(uri, return_tensors="pt")["pixel_values_videos"].shape[1] == 8


@pytest.fixture
def http_server(tmp_path):
    """`python -m http.server` on 127.0.0.1 (a free port) serving `tmp_path / "www"`; stopped by its PID."""
    root = tmp_path / "www"
    root.mkdir()
    with __import__("socket").socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("the test HTTP server did not start")
            time.sleep(0.1)
    try:
        yield root, f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_downloads_are_capped(http_server, plain_video, monkeypatch):
    root, url = http_server
    (root / "clip.mp4").write_bytes(plain_video.read_bytes())
    (root / "space name.mp4").write_bytes(plain_video.read_bytes())
    assert download(f"{url}/clip.mp4") == plain_video.read_bytes()
    processor = VideoLlama2VideoProcessor(**RAW)
    np.testing.assert_array_equal(_pixels(processor, f"{url}/clip.mp4"), _pixels(processor, str(plain_video)))
    monkeypatch.setattr(media_sources_videollama2, "MAX_MEDIA_BYTES", 1000)
    with pytest.raises(MediaTooLargeError, match=rf"^{url}/clip.mp4 holds .* over the .* limit"):
        processor(f"{url}/clip.mp4")
    with pytest.raises(OSError, match="Could not download .*404"):
        download(f"{url}/{urllib.parse.quote('missing.mp4')}")
