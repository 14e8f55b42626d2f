"""The `videollama2-hf` command as a user runs it (a separate process, through its launcher): start-up without torch,
and every user error ending in one line on stderr that names the problem and the fix, with its exit code.

Network: the Hub and media URLs point at a closed port on the loopback interface (`HF_ENDPOINT`), so "no network" is
real and deterministic; nothing is mocked.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

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
