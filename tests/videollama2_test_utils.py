"""Shared test helpers: the fixture variants, the original's placeholder ids, tiny random configs, and tiny
checkpoints for the Auto-class, pipeline, CLI and README tests built from the parity fixtures.

* `original_folder`: a released-layout checkpoint (original config.json, tensor names and tokenizer) with its tiny
  vision tower in a `vision_tower/` sub-folder, so it loads with no extra argument (files are symlinked);
* `converted_folder`: the same checkpoint loaded directly and written with `save_pretrained` (HF layout, processor).
"""

import json
from pathlib import Path

import torch
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
ORIGINAL_PLACEHOLDER = {"video": -201, "image": -200}
# Greedy decoding of random models has near-ties: ids are compared exactly up to the first step with a smaller margin.
MARGIN_FOR_EXACT_IDS = 1e-3

# Tiny random models: placeholder ids past the vocabulary, as for the released Mistral checkpoints.
VOCAB = 96
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
IMAGE_ID, VIDEO_ID = VOCAB, VOCAB + 1


def tiny_config(projector_type="stc_connector", text="mistral", vision="clip_vision_model", num_frames=4, **kwargs):
    """A VideoLLaMA2 config small enough for unit tests (56 px frames, 4x4 patch grid, 2-layer LLM)."""
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
        **kwargs,
    )


def first_low_margin_step(margins: list[float]) -> int:
    """Index of the first greedy step whose top-1/top-2 gap is a near-tie (len(margins) if none)."""
    return next((step for step, margin in enumerate(margins) if margin < MARGIN_FOR_EXACT_IDS), len(margins))


def converted_folder(fixtures_dir: Path, variant: str, destination: Path, dtype=torch.float32) -> Path:
    """The variant loaded from its original layout, saved in the transformers layout with its processor."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import videollama2_hf  # noqa: F401

    checkpoint = fixtures_dir / variant / "original_checkpoint"
    tower = fixtures_dir / variant / "vision_tower"
    model = AutoModelForImageTextToText.from_pretrained(checkpoint, vision_tower=tower, dtype=dtype)
    model.save_pretrained(destination)
    AutoProcessor.from_pretrained(checkpoint, vision_tower=tower).save_pretrained(destination)
    return destination


def reference_case(fixtures_dir: Path, variant: str, name: str) -> dict:
    return json.loads((fixtures_dir / variant / "reference.json").read_text())["cases"][name]


def expanded_ids(case: dict, name: str, token_id: int) -> list[int]:
    """The original's ids with its single placeholder id replaced by the run of our placeholder token."""
    ids = []
    for token in case["input_ids"]:
        ids += [token_id] * case["num_visual_tokens"] if token == ORIGINAL_PLACEHOLDER[name] else [token]
    return ids
