# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""VideoLlama2VideoProcessor against the original: sampled indices, decoded frames and pixel values.

Everything decodes the real sample media with PyAV; nothing is mocked. Media and fixtures come from `../shared`
(see conftest.py).
"""

import io
import json
from pathlib import Path

import av
import numpy as np
import PIL.Image
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.numpy import load_file
from transformers import CLIPImageProcessorPil, SiglipImageProcessorPil
from transformers.video_utils import VideoMetadata

from videollama2_hf.video_decoding_videollama2 import PyAVVideo
from videollama2_hf.video_processing_videollama2 import (
    VideoLlama2VideoProcessor,
    frame_window,
    sample_frame_indices,
    worker_threads,
)


# Spec sections 7.3 and 12: frames the original samples from the repository's media.
SPEC_INDICES = [
    ("sample_demo_1.mp4", 243, 8, [15, 45, 76, 106, 136, 166, 197, 227]),
    (
        "sample_demo_1.mp4",
        243,
        16,
        [8, 23, 38, 53, 68, 83, 98, 113, 129, 144, 159, 174, 189, 204, 219, 234],
    ),
    ("sample_demo_3.mp4", 146, 8, [9, 27, 45, 63, 82, 100, 118, 136]),
    (
        "sample_demo_3.mp4",
        146,
        16,
        [5, 14, 23, 32, 41, 50, 59, 68, 77, 86, 95, 104, 113, 122, 131, 140],
    ),
    ("sample_demo_9.mp4", 219, 8, [14, 41, 68, 95, 123, 150, 177, 204]),
    ("1034346401.mp4", 444, 8, [28, 83, 138, 194, 249, 305, 360, 415]),
    (
        "output_v_3V9tzjyr51I.mp4",
        150,
        16,
        [5, 14, 23, 33, 42, 51, 61, 70, 79, 88, 98, 107, 116, 126, 135, 144],
    ),
    ("00003491.mp4", 3600, 16, [112 + 225 * i for i in range(16)]),
]
SMALL = {"size": {"shortest_edge": 16}, "crop_size": {"height": 16, "width": 16}}  # fast settings for input tests


def _processor(**kwargs) -> VideoLlama2VideoProcessor:
    return VideoLlama2VideoProcessor(**{**SMALL, **kwargs})


def _count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def _processor_for_variant(variant_dir: Path) -> VideoLlama2VideoProcessor:
    """The video processor a converted checkpoint gets: the tower's preprocessor settings."""
    config = json.loads((variant_dir / "vision_tower" / "preprocessor_config.json").read_text())
    settings = {
        key: value for key, value in config.items() if key in VideoLlama2VideoProcessor.valid_kwargs.__annotations__
    }
    if config.get("image_processor_type") == "SiglipImageProcessor":
        settings["do_center_crop"] = False  # SigLIP squashes to a square instead of cropping
    return VideoLlama2VideoProcessor(**settings)


@pytest.fixture(scope="module")
def demo(media_dir) -> Path:
    return media_dir / "sample_demo_1.mp4"


# ----------------------------------------------------------------------------------------------------- sampling


@pytest.mark.parametrize("name,total,num_frames,expected", SPEC_INDICES)
def test_sampler_matches_spec(name, total, num_frames, expected, media_dir):
    assert _count_frames(media_dir / name) == total
    assert sample_frame_indices(total, num_frames).tolist() == expected


def test_sampler_for_media_missing_here():
    # assets/output_v_1jgsRbGzCls.mp4 (600 frames) of the spec is not among the shared media.
    expected = [19, 56, 94, 131, 168, 206, 243, 281, 318, 356, 393, 431, 468, 505, 543, 580]
    assert sample_frame_indices(600, 16).tolist() == expected


@pytest.mark.parametrize("name,total,num_frames,expected", SPEC_INDICES)
def test_processor_decodes_spec_indices(name, total, num_frames, expected, media_dir):
    processor = VideoLlama2VideoProcessor(num_frames=num_frames)
    frames, metadata = processor.fetch_videos(media_dir / name, sample_indices_fn=processor.sample_frames)
    assert metadata.total_num_frames == total
    assert metadata.frames_indices == expected
    assert frames.shape[0] == num_frames and frames.dtype == np.uint8


@pytest.mark.parametrize(
    "start,end,expected",
    [
        (2, 4, [52, 58, 65, 71, 77, 83, 90, 96]),
        (4, 2, [52, 58, 65, 71, 77, 83, 90, 96]),  # swapped
        (2, 2, [51, 54, 57, 60, 63, 66, 69, 72]),  # empty window lasts one second
        (-5, 1, [2, 5, 8, 11, 14, 17, 20, 23]),  # negatives clamp to 0; x.5 rounds up thanks to +1e-6
        (None, 1, [2, 5, 8, 11, 14, 17, 20, 23]),
        (9, None, [225, 227, 230, 232, 234, 236, 239, 241]),  # 224 = int(9 * 25) - 1
    ],
)
def test_sampler_time_window(start, end, expected):
    assert sample_frame_indices(243, 8, fps=25.0, start_time=start, end_time=end).tolist() == expected


def test_processor_time_window_and_fps_sampling(demo):
    processor = _processor()
    out = processor(demo, start_time=2, end_time=4, return_metadata=True, return_tensors="pt")
    assert out["video_metadata"][0].frames_indices == [52, 58, 65, 71, 77, 83, 90, 96]
    out = processor(demo, fps=1, return_metadata=True, return_tensors="pt")  # 9.72 s at one frame per second
    assert out["pixel_values_videos"].shape == (1, 9, 3, 16, 16)
    assert out["video_metadata"][0].frames_indices == sample_frame_indices(243, 9).tolist()


@pytest.mark.parametrize(
    "kwargs,error",
    [
        ({"start_time": 100, "end_time": 200}, ValueError),  # after the end of a 9.72 s video
        ({"start_time": float("nan"), "end_time": 2}, ValueError),
        ({"end_time": 0.01}, ValueError),  # int(0.25) - 1 < 0: no frame
    ],
)
def test_bad_window(kwargs, error, demo):
    with pytest.raises(error, match="window|finite"):
        _processor()(demo, **kwargs)


def test_bad_window_arguments():
    with pytest.raises(TypeError, match="number of seconds"):
        sample_frame_indices(100, 8, fps=25.0, start_time="1", end_time=2)
    with pytest.raises(ValueError, match="frame rate"):
        sample_frame_indices(100, 8, start_time=1, end_time=2)
    with pytest.raises(ValueError, match="num_frames"):
        sample_frame_indices(100, 0)
    with pytest.raises(ValueError, match="at least one frame"):
        sample_frame_indices(0, 8)


times = st.one_of(st.none(), st.floats(-5, 400, allow_nan=False))


@settings(max_examples=50, deadline=None)
@given(
    total=st.integers(1, 100_000),
    num_frames=st.integers(1, 64),
    fps=st.floats(0.5, 120),
    start=times,
    end=times,
)
def test_sampler_properties(total, num_frames, fps, start, end):
    # The window, derived independently of the implementation.
    s = None if start is None else max(start, 0.0)
    e = None if end is None else max(end, 0.0)
    if s is not None and e is not None:
        s, e = min(s, e), max(s, e) if s != e else s + 1
    first = 0 if s is None else max(int(s * fps) - 1, 0)
    last = total - 1 if e is None else min(int(e * fps) - 1, total - 1)
    if last < first:
        with pytest.raises(ValueError, match="window"):
            sample_frame_indices(total, num_frames, fps, start, end)
        return
    indices = sample_frame_indices(total, num_frames, fps, start, end)
    assert frame_window(total, fps, start, end) == (first, last)
    assert len(indices) == num_frames
    assert indices.min() >= first and indices.max() <= last
    assert 0 <= indices.min() and indices.max() <= total - 1
    assert np.all(np.diff(indices) >= 0)


# ---------------------------------------------------------------------------------------- frames and pixels


@pytest.mark.parametrize("num_frames", [8, 16])
def test_decoded_frames_match_original_decoder(num_frames, demo, fixtures_dir):
    reference = load_file(fixtures_dir / "inputs" / f"frames_f{num_frames}.safetensors")
    processor = VideoLlama2VideoProcessor(num_frames=num_frames)
    frames, metadata = processor.fetch_videos(str(demo), sample_indices_fn=processor.sample_frames)
    assert metadata.frames_indices == reference["frame_indices"].tolist()
    np.testing.assert_array_equal(frames, reference["frames_uint8"])  # bit-exact RGB


def test_pixel_values_match_every_fixture_variant(demo, fixtures_dir):
    variants = sorted(path.parent for path in fixtures_dir.glob("*/reference.safetensors"))
    assert len(variants) == 7
    for variant in variants:
        with safe_open(variant / "reference.safetensors", "pt") as handle:  # torch: the AV fixture holds bf16
            reference = {
                key: handle.get_tensor(key) for key in handle.keys() if key.endswith(("pixel_values", "indices"))
            }
        case = "av" if "av.pixel_values" in reference else "video"  # the audio-visual fixture's video case is `av`
        expected = reference[f"{case}.pixel_values"]
        processor = _processor_for_variant(variant)
        out = processor(demo, num_frames=expected.shape[0], return_tensors="pt", return_metadata=True)
        assert out["video_metadata"][0].frames_indices == reference[f"{case}.frame_indices"].tolist(), variant.name
        pixels = out["pixel_values_videos"]
        assert pixels.shape == (1, *expected.shape) and pixels.dtype == torch.float32
        torch.testing.assert_close(pixels[0], expected, rtol=0, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(8, 700),
    width=st.integers(8, 700),
    shortest_edge=st.integers(4, 400),
    crop=st.tuples(st.integers(1, 400), st.integers(1, 400)),
    resample=st.sampled_from([1, 2, 3, 4, 5]),  # every two-pass filter of PIL (not NEAREST)
)
def test_crop_between_resize_passes_equals_pil_image_processor(height, width, shortest_edge, crop, resample):
    """The resize runs its second pass on the cropped rows/columns only: same bits as transformers' PIL processor,
    for portrait and landscape, up- and downscaling, every filter, and crops larger than the image (padding)."""
    settings = {
        "size": {"shortest_edge": shortest_edge},
        "crop_size": {"height": crop[0], "width": crop[1]},
        "resample": resample,
    }
    frame = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    expected = CLIPImageProcessorPil(**settings)([PIL.Image.fromarray(frame)], return_tensors="pt")["pixel_values"]
    got = VideoLlama2VideoProcessor(**settings, num_frames=1)([frame], return_tensors="pt")["pixel_values_videos"][0]
    assert torch.equal(got, expected)


def test_single_thread_budget_processes_on_the_calling_thread_with_the_same_pixels(demo):
    processor = VideoLlama2VideoProcessor(num_frames=8)
    threaded = processor(str(demo), return_tensors="pt")["pixel_values_videos"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert worker_threads(decoding=True) == 0 and worker_threads(decoding=False) == 0
        inline = processor(str(demo), return_tensors="pt")["pixel_values_videos"]
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(inline, threaded)
    if threads > 1:  # one worker resizes beside the decoding thread whenever a second CPU is usable
        assert worker_threads(decoding=True) >= 1


@pytest.mark.parametrize(
    "image_processor,settings",
    [
        (CLIPImageProcessorPil, {"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}}),
        (
            SiglipImageProcessorPil,
            {"size": {"height": 384, "width": 384}, "image_mean": [0.5] * 3, "image_std": [0.5] * 3},
        ),
    ],
)
def test_pixels_equal_pil_image_processor_on_odd_sizes(image_processor, settings):
    """Up- and downscaling of odd shapes: same float32 bits as transformers' PIL image processor."""
    rng = np.random.default_rng(0)
    processor_settings = {**settings, "do_center_crop": image_processor is CLIPImageProcessorPil}
    processor = VideoLlama2VideoProcessor(**processor_settings, num_frames=1)
    for height, width in [(37, 91), (480, 270), (1, 5), (600, 601)]:
        frames = rng.integers(0, 256, (2, height, width, 3), dtype=np.uint8)
        images = [PIL.Image.fromarray(frame) for frame in frames]  # arrays like (1, 5, 3) would be ambiguous
        expected = image_processor(**settings)(images, return_tensors="pt")["pixel_values"]
        got = processor(list(frames), return_tensors="pt")["pixel_values_videos"][0]
        assert torch.equal(got, expected), (height, width)


def _decode(path, num_frames: int) -> tuple[np.ndarray, PyAVVideo]:
    video = PyAVVideo(
        str(path), str(path), lambda metadata: sample_frame_indices(metadata.total_num_frames, num_frames), 32
    )
    return video.frames(), video


def test_long_video_decodes_few_frames(media_dir):
    """8 frames of a 60 s, 3600-frame video: seek to each frame's key frame, skip what nothing references."""
    path = str(media_dir / "00003491.mp4")
    _, video = _decode(path, 8)
    assert video.metadata.frames_indices == [225, 675, 1125, 1575, 2024, 2474, 2924, 3374]
    assert video.decoded_frames < 3600 // 4

    # Seeking must land on the right frames: compare 16 frames (several per key-frame interval) with a plain decode.
    frames, video = _decode(path, 16)
    wanted = dict.fromkeys(video.metadata.frames_indices)
    with av.open(path) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                wanted[index] = frame.to_ndarray(format="rgb24")
            if index == 3487:
                break
    np.testing.assert_array_equal(frames, np.stack(list(wanted.values())))


def _reencode(source_path, path, num_frames: int, size: tuple[int, int], options: dict, container_format=None):
    """The first `num_frames` frames of a sample video re-encoded with libx264 at `size`; returns the path and every
    frame of the new file as decoded in order (the expected frames)."""
    width, height = size
    with av.open(str(source_path)) as source, av.open(str(path), mode="w", format=container_format) as out:
        stream = out.add_stream("libx264", rate=25, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for index, frame in enumerate(source.decode(video=0)):
            if index == num_frames:
                break
            out.mux(stream.encode(frame.reformat(width=width, height=height)))
        out.mux(stream.encode(None))
    with av.open(str(path)) as container:
        return path, [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def test_seeking_with_frame_threads_on_large_frames(tmp_path, demo):
    """720p and up decode with frame threads; seeking between short key-frame intervals must still be exact."""
    options = {"preset": "ultrafast", "bframes": "3", "keyint": "12", "x264-params": "b-pyramid=normal"}
    path, expected = _reencode(demo, tmp_path / "hd.mp4", 36, (1280, 720), options)
    frames, video = _decode(path, 8)
    assert video.metadata.frames_indices == sample_frame_indices(36, 8).tolist()
    np.testing.assert_array_equal(frames, np.stack([expected[i] for i in video.metadata.frames_indices]))
    assert video.decoded_frames < 36


def test_stream_without_timestamps_is_numbered_in_decode_order(tmp_path, media_dir):
    """A raw H.264 stream has no timestamps: frames are counted as they come out of a plain decode."""
    options = {"preset": "ultrafast", "bframes": "2", "keyint": "20"}
    path, expected = _reencode(media_dir / "sample_demo_3.mp4", tmp_path / "raw.h264", 60, (160, 90), options, "h264")
    processor = VideoLlama2VideoProcessor(num_frames=8)
    frames, metadata = processor.fetch_videos(str(path), sample_indices_fn=processor.sample_frames)
    assert metadata.total_num_frames == len(expected) == 60
    assert metadata.frames_indices == sample_frame_indices(60, 8).tolist()
    np.testing.assert_array_equal(frames, np.stack([expected[i] for i in metadata.frames_indices]))


def test_truncated_file_samples_what_can_be_read(tmp_path, demo):
    """Like decord, a cut-off download is the video of the frames it still holds (with a warning)."""
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(demo.read_bytes()[:300_000])  # 44 of 243 frames, the last one cut
    processor = VideoLlama2VideoProcessor(num_frames=8)
    frames, metadata = processor.fetch_videos(str(truncated), sample_indices_fn=processor.sample_frames)
    assert metadata.total_num_frames == 44
    assert metadata.frames_indices == sample_frame_indices(44, 8).tolist()
    indices = metadata.frames_indices
    full, _ = processor.fetch_videos(str(demo), sample_indices_fn=lambda metadata: indices)
    np.testing.assert_array_equal(frames, full)


# ------------------------------------------------------------------------------------------------- inputs


def test_path_bytes_and_file_objects_agree(demo):
    processor = _processor()
    expected = processor(str(demo), return_tensors="pt")["pixel_values_videos"]
    data = demo.read_bytes()
    for video in (demo, data, io.BytesIO(data)):
        assert torch.equal(processor(video, return_tensors="pt")["pixel_values_videos"], expected)
    with open(demo, "rb") as file:
        assert torch.equal(processor(file, return_tensors="pt")["pixel_values_videos"], expected)


def test_url_that_cannot_be_reached():
    with pytest.raises(OSError, match="Download it yourself"):
        _processor()("http://127.0.0.1:9/video.mp4")


def test_array_is_sampled_like_a_file():
    rng = np.random.default_rng(1)
    video = rng.integers(0, 256, (20, 24, 32, 3), dtype=np.uint8)
    processor = _processor()
    out = processor(video, return_tensors="pt", return_metadata=True)
    indices = sample_frame_indices(20, 8).tolist()
    assert out["video_metadata"][0].frames_indices == indices
    as_frames = processor(list(video[indices]), return_tensors="pt")["pixel_values_videos"]
    assert torch.equal(out["pixel_values_videos"], as_frames)
    # channels-first tensors are the same video
    tensor = torch.from_numpy(video).permute(0, 3, 1, 2)
    assert torch.equal(processor(tensor, return_tensors="pt")["pixel_values_videos"], as_frames)


def test_array_used_as_given_without_sampling_and_padded():
    video = np.full((5, 20, 20, 3), 200, dtype=np.uint8)
    out = _processor()(video, do_sample_frames=False, return_tensors="pt")["pixel_values_videos"]
    assert out.shape == (1, 8, 3, 16, 16)
    black = _processor()(np.zeros((1, 20, 20, 3), np.uint8), do_sample_frames=False, return_tensors="pt")
    assert torch.equal(out[0, 5:], black["pixel_values_videos"][0, 1:4])  # padded frames are processed black frames
    assert not torch.equal(out[0, 4], out[0, 5])


def test_short_video_file_is_padded_like_the_same_frames_as_an_array(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "short.mp4"
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for pixels in rng.integers(0, 256, (3, 48, 64, 3), dtype=np.uint8):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode(None))
    with av.open(str(path)) as container:
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    assert frames.shape == (3, 48, 64, 3)
    processor = _processor()
    from_file = processor(str(path), do_sample_frames=False, return_tensors="pt")["pixel_values_videos"]
    from_array = processor(frames, do_sample_frames=False, return_tensors="pt")["pixel_values_videos"]
    assert from_file.shape == (1, 8, 3, 16, 16)
    assert torch.equal(from_file, from_array)
    black = processor(np.zeros((1, 48, 64, 3), np.uint8), do_sample_frames=False, return_tensors="pt")
    assert torch.equal(from_file[0, 3:], black["pixel_values_videos"][0, 1:6])  # padded with processed black frames


def test_frame_lists_are_used_as_given():
    rng = np.random.default_rng(2)
    frames = list(rng.integers(0, 256, (10, 18, 30, 3), dtype=np.uint8))
    processor = _processor()
    from_arrays = processor(frames, return_tensors="pt")["pixel_values_videos"]
    from_pil = processor([PIL.Image.fromarray(f) for f in frames], return_tensors="pt")["pixel_values_videos"]
    assert from_arrays.shape == (1, 10, 3, 16, 16)
    assert torch.equal(from_arrays, from_pil)
    # grayscale and RGBA frames become RGB (alpha is dropped, as the original's PIL convert did)
    rgba = [np.dstack([f, np.full(f.shape[:2], 7, np.uint8)]) for f in frames]
    assert torch.equal(processor(rgba, return_tensors="pt")["pixel_values_videos"], from_arrays)
    gray = processor([f[..., 0] for f in frames], return_tensors="pt")["pixel_values_videos"]
    assert gray.shape == from_arrays.shape


def test_more_frames_than_max_frames_are_cut():
    frames = [np.full((8, 8, 3), i, np.uint8) for i in range(40)]
    out = _processor()(frames, return_tensors="pt")["pixel_values_videos"]
    assert out.shape == (1, 32, 3, 16, 16)
    out = _processor()(frames, max_frames=4, return_tensors="pt")["pixel_values_videos"]
    assert out.shape == (1, 4, 3, 16, 16)


def test_frame_folder(tmp_path, fixtures_dir):
    frames = load_file(fixtures_dir / "inputs" / "frames_f16.safetensors")["frames_uint8"]
    for i, frame in enumerate(frames):
        PIL.Image.fromarray(frame).save(tmp_path / f"frame_{i:03d}.png")
    (tmp_path / "notes.txt").write_text("not a frame")
    processor = _processor()
    out = processor(str(tmp_path), return_tensors="pt", return_metadata=True)
    indices = sample_frame_indices(16, 8).tolist()
    metadata = out["video_metadata"][0]
    assert metadata.frames_indices == indices and metadata.fps == 3.0 and metadata.total_num_frames == 16
    expected = processor(list(frames[indices]), return_tensors="pt")["pixel_values_videos"]
    assert torch.equal(out["pixel_values_videos"], expected)
    # a video given as a nested list of image paths is taken as sampled already: used as given, never resampled
    paths = [str(tmp_path / f"frame_{i:03d}.png") for i in indices]
    with pytest.raises(ValueError, match=r"Sampling frames from a list of images is not supported! Set `do_sample"):
        processor([paths], return_tensors="pt")
    out = processor([paths], do_sample_frames=False, return_tensors="pt")
    assert torch.equal(out["pixel_values_videos"], expected)


def test_gif_duplicates_collapse_then_black_padding(tmp_path):
    colors = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    images = [PIL.Image.new("RGB", (20, 12), color) for color in colors]
    path = tmp_path / "clip.gif"
    images[0].save(path, save_all=True, append_images=images[1:], duration=40, loop=0)
    processor = _processor()
    out = processor(str(path), return_tensors="pt", return_metadata=True)
    # sampling 8 of 5 frames repeats some; the original keeps each GIF frame once and pads with black
    assert sample_frame_indices(5, 8).tolist() == [0, 1, 1, 2, 2, 3, 3, 4]
    assert out["video_metadata"][0].frames_indices == [0, 1, 2, 3, 4]
    assert out["video_metadata"][0].fps == 25.0
    expected_frames = [np.asarray(image) for image in images] + [np.zeros((12, 20, 3), np.uint8)] * 3
    expected = processor(expected_frames, return_tensors="pt")["pixel_values_videos"]
    assert torch.equal(out["pixel_values_videos"], expected)
    assert torch.equal(processor(path.read_bytes(), return_tensors="pt")["pixel_values_videos"], expected)


def test_batches(demo):
    processor = _processor()
    single = processor(demo, return_tensors="pt")["pixel_values_videos"]
    video = np.zeros((12, 20, 20, 3), np.uint8)
    out = processor([str(demo), video], return_tensors="pt", return_metadata=True)
    assert out["pixel_values_videos"].shape == (2, 8, 3, 16, 16)
    assert torch.equal(out["pixel_values_videos"][0], single[0])
    assert [metadata.total_num_frames for metadata in out["video_metadata"]] == [243, 12]
    unstacked = processor([str(demo), video])["pixel_values_videos"]
    assert isinstance(unstacked, list) and len(unstacked) == 2
    as_numpy = processor([str(demo), video], return_tensors="np")["pixel_values_videos"]
    assert isinstance(as_numpy, np.ndarray) and np.array_equal(as_numpy, out["pixel_values_videos"].numpy())
    assert processor(np.stack([video, video]), return_tensors="pt")["pixel_values_videos"].shape[0] == 2
    ragged = [[np.zeros((8, 8, 3), np.uint8)] * 9, [np.zeros((8, 8, 3), np.uint8)] * 10]
    with pytest.raises(ValueError, match="different shapes"):
        processor(ragged, return_tensors="pt")


def test_window_on_arrays_needs_fps():
    video = np.zeros((100, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="video_metadata"):
        _processor()(video, start_time=1, end_time=2)
    out = _processor()(video, start_time=1, end_time=2, video_metadata={"fps": 25}, return_metadata=True)
    assert out["video_metadata"][0].frames_indices == sample_frame_indices(100, 8, 25, 1, 2).tolist()
    metadata = VideoMetadata(total_num_frames=100, fps=25.0)
    out = _processor()([video, video], start_time=1, end_time=2, video_metadata=[metadata, metadata])
    assert len(out["pixel_values_videos"]) == 2
    # grouped per conversation, as transformers accepts metadata: [[{...}], [{...}]]
    grouped = _processor()([video, video], fps=2, video_metadata=[[{"fps": 25}], [metadata]], return_metadata=True)
    assert [m.frames_indices for m in grouped["video_metadata"]] == [sample_frame_indices(100, 8).tolist()] * 2


# ------------------------------------------------------------------------------------------------- errors


def test_errors_name_the_problem(tmp_path, media_dir):
    processor = _processor()
    with pytest.raises(FileNotFoundError, match="No video file"):
        processor(str(tmp_path / "missing.mp4"))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="corrupt"):
        processor(str(corrupt))
    with pytest.raises(ValueError, match="no video stream"):
        processor(str(media_dir / "bird-twitter-car.wav"))
    empty = tmp_path / "empty.avi"
    with av.open(str(empty), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        container.start_encoding()
    with pytest.raises(ValueError, match="without any frame"):
        processor(str(empty))
    empty_folder = tmp_path / "frames"
    empty_folder.mkdir()
    with pytest.raises(ValueError, match="no image files"):
        processor(str(empty_folder))
    for unsupported in (42, {"video": "a.mp4"}, [42]):
        with pytest.raises(TypeError, match="Unsupported video input"):
            processor(unsupported)
    for no_frame in ([], [[]], [[], []]):
        with pytest.raises(ValueError, match="list of frames holds no frame"):
            processor(no_frame)
    with pytest.raises(ValueError, match="still image, not a video"):
        processor(str(media_dir / "desert.png"))
    with pytest.raises(TypeError, match="uint8"):
        processor(np.zeros((4, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="no frames"):
        processor(np.zeros((0, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="3 \\(RGB\\) channels"):
        processor(np.zeros((4, 8, 8, 4), np.uint8), do_convert_rgb=False)


# ----------------------------------------------------------------------------------------- serialization


def test_save_and_load_round_trip(tmp_path, demo):
    siglip = VideoLlama2VideoProcessor(
        size={"height": 24, "width": 24},
        do_center_crop=False,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
        num_frames=16,
        max_frames=12,
        start_time=1.0,
        end_time=5.5,
    )
    siglip.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "video_preprocessor_config.json").read_text())
    assert saved["max_frames"] == 12 and saved["start_time"] == 1.0 and saved["do_center_crop"] is False
    loaded = VideoLlama2VideoProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == siglip.to_dict()
    out = loaded(demo, return_tensors="pt", return_metadata=True)
    assert out["pixel_values_videos"].shape == (1, 12, 3, 24, 24)
    assert torch.equal(out["pixel_values_videos"], siglip(demo, return_tensors="pt")["pixel_values_videos"])
    expected = sample_frame_indices(243, 16, 25.0, 1.0, 5.5)[:12].tolist()
    assert out["video_metadata"][0].frames_indices == expected

    default = VideoLlama2VideoProcessor()
    default.save_pretrained(tmp_path / "clip")
    assert VideoLlama2VideoProcessor.from_pretrained(tmp_path / "clip").to_dict() == default.to_dict()
    assert default.size == {"shortest_edge": 336} and default.crop_size == {"height": 336, "width": 336}


# --------------------------------------------------------------------------------------- property tests


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    num_video_frames=st.integers(1, 40),
    height=st.integers(1, 24),
    width=st.integers(1, 24),
    num_frames=st.integers(1, 40),
    sample=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_processor_on_random_arrays(num_video_frames, height, width, num_frames, sample, seed):
    video = np.random.default_rng(seed).integers(0, 256, (num_video_frames, height, width, 3), dtype=np.uint8)
    pixels = {"size": {"shortest_edge": 8}, "crop_size": {"height": 8, "width": 8}}
    if sample and num_frames > num_video_frames:  # more frames than the clip has: only at the model's own count
        with pytest.raises(ValueError, match=f"only {num_video_frames} frames"):
            VideoLlama2VideoProcessor(**pixels, num_frames=1)(video, num_frames=num_frames, return_tensors="pt")
    processor = VideoLlama2VideoProcessor(**pixels, num_frames=num_frames)
    out = processor(video, do_sample_frames=sample, return_tensors="pt", return_metadata=True)
    taken = num_frames if sample else num_video_frames
    expected_frames = min(max(taken, num_frames), processor.max_frames)
    assert out["pixel_values_videos"].shape == (1, expected_frames, 3, 8, 8)
    assert out["pixel_values_videos"].dtype == torch.float32
    assert torch.isfinite(out["pixel_values_videos"]).all()
    metadata = out["video_metadata"][0]
    assert isinstance(metadata, VideoMetadata) and metadata.total_num_frames == num_video_frames
    if sample:
        expected_indices = sample_frame_indices(num_video_frames, num_frames)[: processor.max_frames].tolist()
    else:
        expected_indices = list(range(min(num_video_frames, processor.max_frames)))
    assert metadata.frames_indices == expected_indices
