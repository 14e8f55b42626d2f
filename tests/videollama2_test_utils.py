"""Shared test helpers: the fixture variants, the original's placeholder ids, tiny random configs, and tiny
checkpoints for the Auto-class, pipeline, CLI and README tests built from the parity fixtures.

* `original_folder`: a released-layout checkpoint (original config.json, tensor names and tokenizer) with its tiny
  vision tower in a `vision_tower/` sub-folder, so it loads with no extra argument (files are symlinked);
* `converted_folder`: the same checkpoint loaded directly and written with `save_pretrained` (HF layout, processor);
* `run_without_the_package`: a script in a fresh interpreter that cannot import `videollama2_hf` (remote code);
* `audio_visual_*`: the audio-visual fixture (`qwen2_siglip_av`) built from its original layout with the key table,
  its processor with the filterbank extractor, and the two saved as a transformers-layout folder;
* `running_server`: `videollama2-hf serve` on 127.0.0.1 and a free port, stopped by its PID (also used by
  bench/serve_overhead.py).
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import torch
from readme_examples import AUDIO_VISUAL_VARIANT as AV_VARIANT  # one home, shared with the README examples
from readme_examples import release_folder as original_folder  # noqa: F401  (one home, shared with the smoke run)


FIXTURE_VARIANTS = [
    "mistral_stc_f8",
    "mistral_stc_f16",
    "mixtral_stc",
    "mistral_mlp2x_gelu",
    "mistral_stp",
    "qwen2_siglip_stcv35_f16",
]
# Every released checkpoint the converter has a preset for.
PRESET_NAMES = {
    "VideoLLaMA2-7B",
    "VideoLLaMA2-7B-Base",
    "VideoLLaMA2-7B-16F",
    "VideoLLaMA2-7B-16F-Base",
    "VideoLLaMA2-8x7B",
    "VideoLLaMA2-8x7B-Base",
    "VideoLLaMA2-72B",
    "VideoLLaMA2-72B-Base",
    "VideoLLaMA2.1-7B-16F",
    "VideoLLaMA2.1-7B-16F-Base",
    "VideoLLaMA2.1-7B-AV",
}
ORIGINAL_PLACEHOLDER = {"video": -201, "image": -200, "audio": -202}
# Parity tolerance of features (absolute) and logits (relative to the largest expected value): the fixtures README's.
FEATURE_ATOL = 1e-4
# Greedy decoding of random models has near-ties: ids are compared exactly up to the first step with a smaller margin.
MARGIN_FOR_EXACT_IDS = 1e-3

# Tiny random models: placeholder ids past the vocabulary, as for the released Mistral checkpoints.
VOCAB = 96
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
IMAGE_ID, VIDEO_ID, AUDIO_ID = VOCAB, VOCAB + 1, VOCAB + 2
# A BEATs small enough for unit tests: TINY_AUDIO_FRAMES filterbank frames of 32 mel bins make 3 x 2 patches of 16.
TINY_AUDIO_CONFIG = {
    "num_mel_bins": 32,
    "patch_embedding_dim": 16,
    "hidden_size": 24,
    "intermediate_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_conv_pos_embeddings": 8,
    "num_conv_pos_embedding_groups": 4,
    "layerdrop": 0.0,  # layer dropping during training would skip recorded outputs
}
TINY_AUDIO_FRAMES = 48


def tiny_config(
    projector_type="stc_connector", text="mistral", vision="clip_vision_model", num_frames=4, audio=False, **kwargs
):
    """A VideoLLaMA2 config small enough for unit tests (56 px frames, 4x4 patch grid, 2-layer LLM; with `audio`, a
    2-layer BEATs)."""
    from videollama2_hf import VideoLlama2Config

    text_config = {
        "model_type": text,
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": VOCAB,
        "pad_token_id": PAD_ID,
        "bos_token_id": BOS_ID,
        "eos_token_id": EOS_ID,
    }
    if text == "mixtral":
        text_config.update(num_local_experts=4, num_experts_per_tok=2)
    vision_config = {
        "model_type": vision,
        "hidden_size": 16,
        "intermediate_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 56,
        "patch_size": 14,
    }
    return VideoLlama2Config(
        text_config=text_config,
        vision_config=vision_config,
        projector_type=projector_type,
        num_frames=num_frames,
        image_token_id=IMAGE_ID,
        video_token_id=VIDEO_ID,
        vision_feature_select_strategy="full" if vision == "siglip_vision_model" else "default",
        **{**({"audio_config": dict(TINY_AUDIO_CONFIG), "audio_token_id": AUDIO_ID} if audio else {}), **kwargs},
    )


def assert_close(actual, expected, atol=FEATURE_ATOL, what=""):
    """Same shape and every value within `atol`."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    difference = (actual.float() - expected.float()).abs().max().item()
    assert difference <= atol, f"{what}: max abs difference {difference:.3g} > {atol:.3g}"


def assert_logits_close(actual, expected, what=""):
    """`assert_close` with `FEATURE_ATOL` relative to the largest expected magnitude (at least 1)."""
    assert_close(actual, expected, atol=FEATURE_ATOL * max(1.0, expected.abs().max().item()), what=what)


def first_low_margin_step(margins: list[float]) -> int:
    """Index of the first greedy step whose top-1/top-2 gap is a near-tie (len(margins) if none)."""
    return next((step for step, margin in enumerate(margins) if margin < MARGIN_FOR_EXACT_IDS), len(margins))


def converted_folder(fixtures_dir: Path, variant: str, destination: Path, dtype=torch.float32) -> Path:
    """The variant loaded from its original layout, saved in the transformers layout with its processor."""
    from transformers import AutoModelForImageTextToText

    from videollama2_hf.original_checkpoint import load_original_processor

    checkpoint = fixtures_dir / variant / "original_checkpoint"
    tower = fixtures_dir / variant / "vision_tower"
    model = AutoModelForImageTextToText.from_pretrained(checkpoint, vision_tower=tower, dtype=dtype)
    model.save_pretrained(destination)
    load_original_processor(checkpoint, vision_tower=tower).save_pretrained(destination)
    return destination


def reference_case(fixtures_dir: Path, variant: str, name: str) -> dict:
    return json.loads((fixtures_dir / variant / "reference.json").read_text())["cases"][name]


def expanded_ids(case: dict, name: str, token_id: int) -> list[int]:
    """The original's ids with its single placeholder id replaced by the run of our placeholder token."""
    ids = []
    for token in case["input_ids"]:
        ids += [token_id] * case["num_visual_tokens"] if token == ORIGINAL_PLACEHOLDER[name] else [token]
    return ids


def expanded_audio_visual_ids(case: dict, video_token_id: int, audio_token_id: int) -> list[int]:
    """An audio-visual case's ids with its placeholder replaced by our runs: `<video>` -> the video's tokens, then
    (when the case hears the video) its audio's, as the original merges them; `<audio>` -> the audio's tokens."""
    runs = {
        ORIGINAL_PLACEHOLDER["video"]: [video_token_id] * case["num_video_tokens"],
        ORIGINAL_PLACEHOLDER["audio"]: [],
    }
    runs[ORIGINAL_PLACEHOLDER["video"] if case["num_video_tokens"] else ORIGINAL_PLACEHOLDER["audio"]] += [
        audio_token_id
    ] * case["num_audio_tokens"]
    ids = []
    for token in case["input_ids"]:
        ids += runs.get(token, [token])
    return ids


def audio_visual_config(fixtures_dir: Path):
    """The `VideoLlama2Config` of the audio-visual fixture: its config.json, its tower's config and the sizes of
    its BEATs read back from the tensor shapes (as for the release), with the tokenizer giving the token ids."""
    from videollama2_hf import VideoLlama2Config
    from videollama2_hf.original_layout import (
        audio_encoder_config,
        convert_config,
        load_original_tokenizer,
        local_tensor_shapes,
    )

    folder = fixtures_dir / AV_VARIANT
    checkpoint = folder / "original_checkpoint"
    tokenizer = load_original_tokenizer(checkpoint, audio=True)
    kwargs = convert_config(
        json.loads((checkpoint / "config.json").read_text()),
        json.loads((folder / "vision_tower" / "config.json").read_text()),
        tokenizer.image_token_id,
        tokenizer.video_token_id,
        audio_token_id=tokenizer.audio_token_id,
        audio_config=audio_encoder_config(local_tensor_shapes(checkpoint)),
    )
    return VideoLlama2Config(**kwargs)


def audio_visual_model(fixtures_dir: Path, dtype=torch.float32):
    """The audio-visual fixture's checkpoint (every tower included) loaded through the release's key table."""
    from videollama2_hf import VideoLlama2ForConditionalGeneration
    from videollama2_hf.original_layout import ORIGINAL_TO_HF_KEY_PATTERNS

    checkpoint = fixtures_dir / AV_VARIANT / "original_checkpoint"
    return VideoLlama2ForConditionalGeneration.from_pretrained(
        checkpoint,
        config=audio_visual_config(fixtures_dir),
        key_mapping=dict(ORIGINAL_TO_HF_KEY_PATTERNS),
        dtype=dtype,
    ).eval()


def audio_visual_processor(fixtures_dir: Path):
    """The release's processor (tokenizer with `<audio>`, SigLIP pixels, ChatML template) with the filterbank."""
    from videollama2_hf import VideoLlama2FeatureExtractor, VideoLlama2Processor
    from videollama2_hf.original_checkpoint import load_original_processor
    from videollama2_hf.original_layout import audio_encoder_config, load_original_tokenizer, local_tensor_shapes

    folder = fixtures_dir / AV_VARIANT
    visual = load_original_processor(folder / "original_checkpoint", vision_tower=folder / "vision_tower")
    # the BEATs patch size, read back from the shard headers alone (no tokenizer, no full config)
    audio_patch_size = audio_encoder_config(local_tensor_shapes(folder / "original_checkpoint"))["patch_size"]
    return VideoLlama2Processor(
        visual.image_processor,
        visual.video_processor,
        load_original_tokenizer(folder / "original_checkpoint", audio=True),
        feature_extractor=VideoLlama2FeatureExtractor(),
        chat_template=visual.chat_template,
        projector_type=visual.projector_type,
        patch_size=visual.patch_size,
        projector_downsample=visual.projector_downsample,
        audio_patch_size=audio_patch_size,
    )


def case_media(media_dir: Path, case: dict, name: str) -> dict:
    """Processor keywords for an audio-visual case's media file, as a user passes them: the wav of `audio`, the
    video of `av` (heard: its sound track too) and `video` (silent)."""
    path = str(media_dir / case["media_file"])
    if name == "audio":
        return {"audio": [path]}
    return {"videos": [path], "load_audio_from_video": name == "av"}


def stored_media(reference: dict, name: str) -> dict:
    """Model inputs of an audio-visual case from the original's processor outputs (pixels, bfloat16 filterbank), so
    that a comparison downstream is the model's alone."""
    media = {}
    if name != "audio":
        media["pixel_values_videos"] = reference["av.pixel_values"][None]
    if name != "video":
        media["input_features"] = reference[f"{name}.fbank"].float()
    return media


def audio_visual_folder(fixtures_dir: Path, destination: Path, dtype=torch.float32) -> Path:
    """The audio-visual fixture saved in the transformers layout with its processor and generation config."""
    from transformers import GenerationConfig

    # the key table renamed the original's tensors at load time; the folder is written in the transformers layout
    audio_visual_model(fixtures_dir, dtype).save_pretrained(destination, save_original_format=False)
    audio_visual_processor(fixtures_dir).save_pretrained(destination)
    checkpoint = fixtures_dir / AV_VARIANT / "original_checkpoint"
    GenerationConfig.from_pretrained(checkpoint).save_pretrained(destination)
    return destination


# Prepended to the scripts of `run_without_the_package`: the package stays unimportable even where it is installed.
_BLOCK_THE_PACKAGE = """
import importlib.abc, sys

class _BlockPackage(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "videollama2_hf":
            raise ModuleNotFoundError(name)

sys.meta_path.insert(0, _BlockPackage())
"""


def run_without_the_package(script: str, *args, cwd: Path) -> dict:
    """Run `script` with `args` in a fresh interpreter that cannot import `videollama2_hf` and with its own modules
    cache (offline); returns the last line it printed, parsed as JSON."""
    env = {**os.environ, "HF_MODULES_CACHE": str(cwd / "modules"), "HF_HUB_OFFLINE": "1"}
    completed = subprocess.run(
        [sys.executable, "-I", "-c", _BLOCK_THE_PACKAGE + script, *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


class ServerProcess:
    """A `videollama2-hf serve` process started by `running_server`: its `url` (http://127.0.0.1:PORT), `pid` and
    `log()` (what it printed so far)."""

    def __init__(self, process: subprocess.Popen, url: str, log_file):
        self.process, self.url, self.pid, self._log_file = process, url, process.pid, log_file

    def log(self) -> str:
        self._log_file.seek(0)
        return self._log_file.read().decode(errors="replace")


def free_port() -> int:
    """A port free on 127.0.0.1 now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answering(process: subprocess.Popen, url: str, seconds: float, output) -> None:
    """Until `url`/health answers 200; fails with the end of `output()` (what the server printed) if the process
    exits first or `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        if process.poll() is not None:
            raise AssertionError(f"the server exited with code {process.returncode}:\n{output()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not answer within {seconds} s:\n{output()[-4000:]}")
        time.sleep(0.5)


def stop_by_pid(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it has not exited after 30 s."""
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def running_server(model, *options: str, startup_seconds: float = 240, launcher: list[str] | None = None):
    """`videollama2-hf serve MODEL` on 127.0.0.1 and a free port, on the CPU, until the block ends; then stopped by
    its PID (SIGTERM, then SIGKILL after 30 s). Fails with the server's output if it is not answering
    `/health` within `startup_seconds`. `launcher`: the command before `serve` (default: this environment's
    `videollama2-hf` script, as a user runs it)."""
    launcher = launcher or [str(Path(sys.executable).with_name("videollama2-hf"))]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_file = tempfile.TemporaryFile()
    process = subprocess.Popen(
        [*launcher, "serve", str(model), "--port", str(port), "--device", "cpu", *options],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    server = ServerProcess(process, url, log_file)
    try:
        wait_until_answering(process, url, startup_seconds, server.log)
        yield server
    finally:
        stop_by_pid(process)
        log_file.close()
