"""`videollama2-hf ask` / `info` (and the library functions behind them) on tiny fixture checkpoints.

Exit codes scripts rely on: 0 success, 1 runtime error, 2 usage error.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
from videollama2_test_utils import audio_visual_folder, original_folder

from videollama2_hf.checkpoint_info import describe_checkpoint
from videollama2_hf.cli import main
from videollama2_hf.inference import ask, load_model_and_processor


QUESTION = "What is happening?"


@pytest.fixture(scope="module")
def tiny_original(fixtures_dir, tmp_path_factory):
    return original_folder(fixtures_dir, "mistral_stc_f8", tmp_path_factory.mktemp("original") / "VideoLLaMA2-tiny")


@pytest.fixture(scope="module")
def loaded(tiny_original):
    return load_model_and_processor(str(tiny_original), dtype="float32", device="cpu")


@pytest.fixture(scope="module")
def image_path(media_dir):
    return str(media_dir / "extreme_ironing.jpg")


def run(argv, capsys):
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code, capsys.readouterr().err


def test_help_lists_commands_examples_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    for text in ("ask", "info", "convert", "exit codes", "2 usage error", "videollama2-hf ask --model"):
        assert text in out
    with pytest.raises(SystemExit):
        main(["ask", "--help"])
    out = capsys.readouterr().out
    for flag in ("--video", "--image", "--audio", "--with-audio", "--num-frames", "--max-new-tokens", "--do-sample"):
        assert flag in out
    assert "examples:" in out and "DAMO-NLP-SG/VideoLLaMA2-7B-16F" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["ask", QUESTION], "one of the arguments --video --image --audio is required"),
        (["ask", "--image", "b.jpg", "--with-audio", QUESTION], "--with-audio hears the sound of a video"),
        (["ask", "--video", "a.mp4", "--image", "b.jpg", QUESTION], "not allowed with"),
        (["ask", "--video", "a.mp4", "--temperature", "0.5", QUESTION], "need --do-sample"),
        (["ask", "--video", "a.mp4", "--num-frames", "0", QUESTION], "--num-frames must be positive"),
        (["ask", "--video", "a.mp4", "--dtype", "int8", QUESTION], "invalid choice"),
        (["info"], "required: DIR"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_exit_with_2(argv, message, capsys):
    code, err = usage_error(argv, capsys)
    assert code == 2
    assert message in err


def test_ask_streams_the_greedy_answer(tiny_original, loaded, image_path, capsys):
    model, processor = loaded
    expected = ask(model, processor, QUESTION, image=image_path, max_new_tokens=6)
    code, out, _ = run(
        ["ask", "--model", str(tiny_original), "--image", image_path, "--max-new-tokens", "6", "--dtype", "float32"]
        + ["--device", "cpu", "-q", QUESTION],
        capsys,
    )
    assert code == 0
    assert out.strip() == expected and expected


def test_ask_video_with_num_frames_and_sampling(tiny_original, media_dir, capsys):
    video = str(media_dir / "sample_demo_1.mp4")
    argv = ["ask", "--model", str(tiny_original), "--video", video, "--num-frames", "4", "--max-new-tokens", "4"]
    argv += ["--do-sample", "--temperature", "0.7", "--top-p", "0.9", "--seed", "0", "-q", QUESTION]
    first = run(argv, capsys)
    second = run(argv, capsys)
    assert first[0] == 0 and first[1].strip()
    assert first[1] == second[1]  # seeded


def test_ask_missing_media_or_model_exits_with_1(tiny_original, tmp_path, image_path, capsys):
    code, _, err = run(["ask", "--model", str(tiny_original), "--video", str(tmp_path / "none.mp4"), QUESTION], capsys)
    assert code == 1 and "No such file" in err
    code, _, err = run(["ask", "--model", str(tmp_path / "missing"), "--image", image_path, QUESTION], capsys)
    assert code == 1 and "No such model folder" in err


def test_ask_offline_default_model_fails_fast_with_advice(tmp_path, image_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "empty-cache")}
    result = subprocess.run(
        [sys.executable, "-m", "videollama2_hf", "ask", "--image", image_path, QUESTION],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    assert result.returncode == 1, result.stderr
    assert "DAMO-NLP-SG/VideoLLaMA2-7B-16F" in result.stderr
    assert "--model" in result.stderr and "local folder" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture(scope="module")
def tiny_audio_visual(fixtures_dir, tmp_path_factory):
    return audio_visual_folder(fixtures_dir, tmp_path_factory.mktemp("audio-visual") / "VideoLLaMA2.1-AV-tiny")


@pytest.mark.parametrize(
    "media", [["--audio", "bird-twitter-car.wav"], ["--video", "sample_demo_1.mp4", "--with-audio"]]
)
def test_ask_about_a_sound(tiny_audio_visual, media_dir, media, capsys):
    """The audio-visual checkpoint hears a wav file, or a video with its sound: the streamed answer is the library's,
    which is the original's greedy answer (the parity tests compare it)."""
    model, processor = load_model_and_processor(str(tiny_audio_visual), dtype="float32", device="cpu", audio=True)
    source = str(media_dir / media[1])
    kwargs = {"audio": source} if media[0] == "--audio" else {"video": source, "with_audio": True}
    expected = ask(model, processor, QUESTION, max_new_tokens=5, **kwargs)
    argv = ["ask", "--model", str(tiny_audio_visual), media[0], source, *media[2:], "--max-new-tokens", "5"]
    code, out, _ = run([*argv, "--dtype", "float32", "--device", "cpu", "-q", QUESTION], capsys)
    assert code == 0 and out.strip() == expected and expected


def _component_counts(model) -> dict:
    counts = {"vision tower": 0, "projector": 0, "language model": 0, "lm head": 0}
    prefixes = {
        "model.vision_tower.": "vision tower",
        "model.multi_modal_projector.": "projector",
        "model.language_model.": "language model",
        "lm_head.": "lm head",
    }
    for name, param in model.named_parameters(remove_duplicate=False):
        counts[next(label for prefix, label in prefixes.items() if name.startswith(prefix))] += param.numel()
    return counts


def test_info_original_and_converted_layouts(tiny_original, loaded, tmp_path, capsys):
    model, _ = loaded
    expected = _component_counts(model)
    converted = tmp_path / "converted"
    model.to(torch.bfloat16).save_pretrained(converted)
    model.to(torch.float32)
    for folder, layout in ((tiny_original, "original"), (converted, "transformers")):
        info = describe_checkpoint(folder)
        assert info.layout == layout
        assert (info.num_frames, info.tokens_per_video, info.tokens_per_image) == (8, 45, 45)
        assert info.projector == "stc_connector" and info.backbone.startswith("mistral")
        assert {k: v for k, v in info.parameters.items() if k != "total"} == expected
        assert info.parameters["total"] == sum(expected.values())
        assert info.dtypes == {"BF16": sum(expected.values())}

        code, out, _ = run(["info", str(folder)], capsys)
        assert code == 0
        assert "tokens per video" in out and "45" in out and "params: projector" in out
        code, out, _ = run(["info", str(folder), "--json"], capsys)
        assert code == 0 and json.loads(out)["parameters"] == info.parameters


def test_info_errors_exit_with_1(tmp_path, capsys):
    code, _, err = run(["info", str(tmp_path / "nothing")], capsys)
    assert code == 1 and "not a folder" in err
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    code, _, err = run(["info", str(tmp_path)], capsys)
    assert code == 1 and "not a VideoLLaMA2 checkpoint" in err
