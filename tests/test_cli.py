"""The `videollama2-hf` command as a user runs it (a separate process, through its launcher): start-up without torch,
and every user error ending in one line on stderr that names the problem and the fix, with its exit code.

Network: the Hub and media URLs point at a closed port on the loopback interface (`HF_ENDPOINT`), so "no network" is
real and deterministic; nothing is mocked.
"""

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import av
import numpy as np
import pytest
from videollama2_test_utils import original_folder


QUESTION = "What is happening?"
CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens there, connections are refused at once


def videollama2_hf(*argv, cwd=None, env=None, timeout=600) -> subprocess.CompletedProcess:
    """Run the command through its launcher, exactly as the `videollama2-hf` console script does."""
    environment = {**os.environ, "HF_ENDPOINT": CLOSED_PORT, **(env or {})}
    command = [sys.executable, "-m", "videollama2_hf_cli", *map(str, argv)]
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result, code: int, *fragments: str) -> str:
    assert result.returncode == code, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    for fragment in fragments:
        assert fragment in last, (fragment, last)
    return last


@pytest.fixture(scope="module")
def release(fixtures_dir, tmp_path_factory):
    return original_folder(fixtures_dir, "mistral_stc_f8", tmp_path_factory.mktemp("release") / "VideoLLaMA2-tiny")


@pytest.fixture(scope="module")
def converted(fixtures_dir, tmp_path_factory):
    variant = fixtures_dir / "mistral_stc_f8"
    out = tmp_path_factory.mktemp("converted") / "VideoLLaMA2-tiny-hf"
    result = videollama2_hf(
        "convert", variant / "original_checkpoint", out, "--vision-tower", variant / "vision_tower", "-q"
    )
    assert result.returncode == 0, result.stderr
    return out


def test_quick_commands_start_without_torch(release):
    """--help, --version, --list-presets and info never import torch (the launcher defers Auto registration)."""
    script = (
        "import sys, videollama2_hf_cli; sys.argv = ['videollama2-hf', *sys.argv[1:]]\n"
        "try:\n    code = videollama2_hf_cli.main()\nexcept SystemExit as exit:\n    code = exit.code\n"
        "print('RESULT', code, 'torch' in sys.modules, 'torchvision' in sys.modules)"
    )
    for argv in (["--help"], ["--version"], ["convert", "--list-presets"], ["info", str(release)]):
        result = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=120)
        assert result.stdout.strip().splitlines()[-1] == "RESULT 0 False False", (argv, result.stderr)


def test_version_everywhere():
    from videollama2_hf import __version__

    assert videollama2_hf("--version").stdout.strip() == f"videollama2-hf {__version__}"
    module = subprocess.run([sys.executable, "-m", "videollama2_hf", "--version"], capture_output=True, text=True)
    assert module.returncode == 0 and module.stdout.strip() == f"videollama2-hf {__version__}"


def test_media_are_checked_before_the_model_loads(release, tmp_path):
    """A typo in --video costs nothing: the error comes before torch is even imported."""
    script = (
        "import sys, videollama2_hf_cli; sys.argv = ['videollama2-hf', *sys.argv[1:]]; "
        "code = videollama2_hf_cli.main(); print('RESULT', code, 'torch' in sys.modules)"
    )
    argv = ["ask", "--model", str(release), "--video", str(tmp_path / "typo.mp4"), QUESTION]
    result = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "RESULT 1 False"
    assert "No such file" in result.stderr


@pytest.mark.parametrize(
    "case,argv,code,fragments",
    [
        ("empty question", ["ask", "--video", "{media}/sample_demo_1.mp4", "  "], 2, ["the question is empty"]),
        ("image as --video", ["ask", "--video", "{media}/desert.png", QUESTION], 1, ["is an image", "--image"]),
        ("folder without frames", ["ask", "--video", "{empty}", QUESTION], 1, ["holds no image files"]),
        ("image URL, no network", ["ask", "--image", f"{CLOSED_PORT}/x.jpg", QUESTION], 1, ["Could not download"]),
        ("video URL, no network", ["ask", "--video", f"{CLOSED_PORT}/x.mp4", QUESTION], 1, ["Could not download"]),
        ("not a checkpoint", ["ask", "--model", "{empty}", "--image", "{media}/desert.png", QUESTION], 1,
         ["has no config.json"]),
        ("missing model folder", ["ask", "--model", "./nowhere", "--image", "{media}/desert.png", QUESTION], 1,
         ["No such model folder"]),
        ("subcommand usage", ["convert"], 2, ["convert needs SOURCE and OUTPUT_DIR"]),
        ("hub id, no network", ["convert", "DAMO-NLP-SG/VideoLLaMA2-7B", "{empty}/out"], 1,
         ["Cannot reach the Hub", "pass its folder"]),
    ],
)  # fmt: skip
def test_user_errors_are_one_line(case, argv, code, fragments, media_dir, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = [arg.format(media=media_dir, empty=empty) for arg in argv]
    began = time.perf_counter()
    result = videollama2_hf(*argv, cwd=tmp_path)
    assert_one_line_error(result, code, *fragments)
    assert time.perf_counter() - began < 60, case  # no retry loop, no model load
    if code == 2:
        assert result.stderr.startswith(f"usage: videollama2-hf {argv[0]}")  # the subcommand's usage


def test_model_folder_problems(converted, media_dir, tmp_path):
    image = media_dir / "desert.png"
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert_one_line_error(videollama2_hf("ask", "--model", bad, "--image", image, QUESTION), 1, "not a VideoLLaMA2")
    truncated = tmp_path / "truncated"
    shutil.copytree(converted, truncated)
    shard = sorted(truncated.glob("model-*.safetensors"))[0]
    shard.write_bytes(shard.read_bytes()[:-1000])
    result = videollama2_hf("ask", "--model", truncated, "--image", image, QUESTION)
    assert_one_line_error(result, 1, "Truncated safetensors file", shard.name, "download it again")
    result = videollama2_hf("convert", converted, tmp_path / "again")
    assert_one_line_error(result, 1, "already in the transformers layout")


def _png_of_zeros(path: Path, width: int, height: int) -> Path:
    """A valid black 1-bit PNG of any size, written row by row: 196 megapixels take 30 KB on disk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor, row = zlib.compressobj(9), bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    pixels = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def unreadable_weights(release, tmp_path_factory) -> Path:
    """The tiny release with a truncated shard: a command that reads a weight fails on it."""
    folder = tmp_path_factory.mktemp("unreadable") / "VideoLLaMA2-tiny"
    shutil.copytree(release, folder)
    for shard in folder.glob("*.safetensors"):
        data = shard.read_bytes()
        shard.unlink()  # a copy, not the symlinked fixture
        shard.write_bytes(data[: len(data) // 2])
    return folder


@pytest.fixture(scope="module")
def wild_media(media_dir, tmp_path_factory) -> dict:
    """Files users pass by mistake or that cannot be read, by case name."""
    folder = tmp_path_factory.mktemp("wild")
    for name, data in (("empty.mp4", b""), ("empty.wav", b""), ("garbage.mp4", bytes(range(256)) * 40)):
        (folder / name).write_bytes(data)
    return {
        "196-megapixel PNG": _png_of_zeros(folder / "huge.png", 14000, 14000),
        "zero-byte mp4": folder / "empty.mp4",
        "garbage mp4": folder / "garbage.mp4",
        "wav as --video": media_dir / "bird-twitter-car.wav",
        "mp4 as --image": media_dir / "sample_demo_1.mp4",
        "zero-byte wav": folder / "empty.wav",
    }


@pytest.mark.parametrize(
    "case,option,fragments",
    [
        ("196-megapixel PNG", "--image", ["huge.png is too large to decode safely", "decompression bomb"]),
        ("zero-byte mp4", "--video", ["empty.mp4 is empty (0 bytes)"]),
        ("garbage mp4", "--video", ["Could not decode", "(Invalid data found when processing input)"]),
        ("wav as --video", "--video", ["has no video stream (an audio file?)", "--audio"]),
        ("mp4 as --image", "--image", ["is a video, not an image", "--video"]),
        ("zero-byte wav", "--audio", ["empty.wav is empty (0 bytes)"]),
    ],
)
def test_media_are_probed_before_any_weight_is_read(case, option, fragments, unreadable_weights, wild_media):
    """A one-line error about the file, not about the (unreadable) weights: the file was probed first."""
    began = time.perf_counter()
    result = videollama2_hf("ask", "--model", unreadable_weights, option, wild_media[case], QUESTION)
    assert_one_line_error(result, 1, *fragments)
    assert "Errno" not in result.stderr and "Truncated" not in result.stderr
    assert time.perf_counter() - began < 60


def test_missing_model_folder_is_not_looked_up_on_the_hub(media_dir, tmp_path):
    """`out/nope` where `out/` is a local folder names a folder, not a Hub repo: no Hub request, no retries."""
    (tmp_path / "out").mkdir()
    began = time.perf_counter()
    result = videollama2_hf("ask", "--model", "out/nope", "--image", media_dir / "desert.png", QUESTION, cwd=tmp_path)
    assert_one_line_error(result, 1, "No such model folder: out/nope (out holds no nope)")
    assert time.perf_counter() - began < 60


def test_info_names_a_missing_shard(fixtures_dir, tmp_path):
    variant = fixtures_dir / "mistral_stc_f8"
    out = tmp_path / "sharded"
    argv = ["convert", variant / "original_checkpoint", out, "--vision-tower", variant / "vision_tower"]
    assert videollama2_hf(*argv, "--max-shard-size", "200KB", "-q").returncode == 0
    shards = sorted(out.glob("model-*.safetensors"))
    assert len(shards) > 2 and videollama2_hf("info", out).returncode == 0
    shards[1].unlink()  # an interrupted download
    assert_one_line_error(videollama2_hf("info", out), 1, "Missing shard(s)", shards[1].name, "download")
    assert_one_line_error(videollama2_hf("info", out, "--json"), 1, shards[1].name)


def test_convert_refuses_a_read_only_output_folder(fixtures_dir, tmp_path):
    variant = fixtures_dir / "mistral_stc_f8"
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    before = out.stat()
    try:
        argv = ["convert", variant / "original_checkpoint", out, "--vision-tower", variant / "vision_tower"]
        assert_one_line_error(videollama2_hf(*argv), 1, f"{out} is read-only (mode 555)", "chmod u+w")
        after = out.stat()
        assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode) and not any(out.iterdir())
        assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]  # no temporary folder left beside it
    finally:
        out.chmod(0o755)


def test_data_uri_video_is_read_like_its_file(release, tmp_path):
    """What an OpenAI-style client sends: the video inline, as a base64 `data:` URI (and a `file://` URL)."""
    path = tmp_path / "clip.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(8):
            frame = np.full((48, 64, 3), 30 * index, np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    uri = "data:video/mp4;base64," + __import__("base64").b64encode(path.read_bytes()).decode()
    common = ["ask", "--model", release, "--max-new-tokens", "3", "-q"]
    answers = [videollama2_hf(*common, "--video", source, QUESTION) for source in (path, uri, path.as_uri())]
    assert [answer.returncode for answer in answers] == [0, 0, 0], answers[1].stderr[-2000:]
    assert answers[0].stdout == answers[1].stdout == answers[2].stdout


@pytest.mark.parametrize(
    "argv,fragments",
    [
        (["--audio", "{media}/missing.wav"], ["No such file"]),
        (["--audio", "{media}/desert.png"], ["desert.png has no audio stream", "Pass an audio file"]),
        (
            ["--video", "{media}/output_v_3V9tzjyr51I.mp4", "--with-audio"],
            ["has no audio stream", "without its audio"],
        ),
        (["--audio", "{media}/bird-twitter-car.wav"], ["has no audio tower", "VideoLLaMA2.1-7B-AV"]),
        (["--video", "{media}/sample_demo_1.mp4", "--with-audio"], ["has no audio tower", "--with-audio"]),
    ],
)
def test_audio_errors_are_one_line(release, media_dir, argv, fragments):
    """Checked before the model loads: a missing or silent file, and a checkpoint without an audio tower."""
    argv = [arg.format(media=media_dir) for arg in argv]
    began = time.perf_counter()
    assert_one_line_error(videollama2_hf("ask", "--model", release, *argv, QUESTION), 1, *fragments)
    assert time.perf_counter() - began < 60


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_missing_gpu(release, media_dir):
    result = videollama2_hf(
        "ask", "--model", release, "--device", "cuda", "--image", media_dir / "desert.png", QUESTION
    )
    assert_one_line_error(result, 1, "no CUDA device is available", "--device cpu")


def test_overwrite_refuses_a_folder_of_other_files(fixtures_dir, tmp_path):
    variant = fixtures_dir / "mistral_stc_f8"
    (tmp_path / "src").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "src" / "app.py").write_text("print()")
    argv = ["convert", variant / "original_checkpoint", ".", "--vision-tower", variant / "vision_tower", "--overwrite"]
    result = videollama2_hf(*argv, cwd=tmp_path)
    assert_one_line_error(result, 1, "Refusing to overwrite", "notes.txt", "src/")
    assert (tmp_path / "notes.txt").read_text() == "mine" and (tmp_path / "src" / "app.py").is_file()


def test_broken_pipe_ends_quietly():
    """`videollama2-hf ... | head`: the reader is gone before the command writes; no traceback, no noise."""
    command = [sys.executable, "-m", "videollama2_hf_cli", "convert", "--list-presets"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)
    assert stderr == b"", stderr.decode()
    assert process.returncode in (0, 141)


def test_ctrl_c_while_loading_exits_130_without_traceback(release, media_dir):
    command = [sys.executable, "-m", "videollama2_hf_cli", "ask", "--model", str(release), "--image"]
    command += [str(media_dir / "desert.png"), QUESTION]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    maps, deadline = f"/proc/{process.pid}/maps", time.monotonic() + 120
    while "libtorch" not in Path(maps).read_text() and time.monotonic() < deadline:  # torch is being imported
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == "videollama2-hf: interrupted."
