# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Turn a released DAMO-NLP-SG VideoLLaMA2 checkpoint (original layout) into a transformers-5 repository.

This module is the single source of truth for the original -> HF key names and config fields. It imports
neither torch nor transformers at module level, so that copying weights stays cheap.
"""

import re


# Original key -> HF key. The first pattern that matches wins; the patterns are disjoint and anchored, so
# applying them one after the other (as transformers' load-time renaming does) gives the same result.
ORIGINAL_TO_HF_KEY_PATTERNS: list[tuple[str, str]] = [
    (r"^model\.vision_tower\.vision_tower\.vision_model\.", "model.vision_tower."),
    # readout MLP of STC/STP (`readout.0`, `readout.2`) and the whole `mlp2x_gelu` projector (`0`, `2`)
    *[
        (rf"^model\.mm_projector\.(?:readout\.)?{2 * i}\.", f"model.multi_modal_projector.readout.linear_{i + 1}.")
        for i in range(4)
    ],
    (r"^model\.mm_projector\.(weight|bias)$", r"model.multi_modal_projector.readout.linear_1.\1"),  # `linear`
    (r"^model\.mm_projector\.(s[12]\.b\d+\.(?:conv[123]|downsample))\.bn\.", r"model.multi_modal_projector.\1.norm."),
    (r"^model\.mm_projector\.sampler\.0\.", "model.multi_modal_projector.sampler."),
    (r"^model\.mm_projector\.(s[12]\.b\d+\.)", r"model.multi_modal_projector.\1"),
    (r"^model\.(embed_tokens|layers|norm)\.", r"model.language_model.\1."),
    (r"^lm_head\.weight$", "lm_head.weight"),
]
_COMPILED_PATTERNS = [(re.compile(pattern), replacement) for pattern, replacement in ORIGINAL_TO_HF_KEY_PATTERNS]


def convert_original_key(key: str) -> str:
    """HF name of an original checkpoint tensor; unknown names raise, so nothing is silently dropped."""
    for pattern, replacement in _COMPILED_PATTERNS:
        if pattern.search(key):
            return pattern.sub(replacement, key)
    raise KeyError(
        f"Unknown tensor {key!r} in the source checkpoint: it is not part of a VideoLLaMA2 vision/language model "
        "(audio-visual checkpoints are not supported)."
    )


# Original config.json fields that describe the multimodal parts or training, not the language model.
_MULTIMODAL_CONFIG_KEYS = {
    "mm_vision_tower",
    "mm_vision_select_layer",
    "mm_vision_select_feature",
    "mm_projector_type",
    "mm_hidden_size",
    "mm_projector_lr",
    "mm_use_im_start_end",
    "mm_use_im_patch_token",
    "use_mm_proj",
    "tune_mm_mlp_adapter",
    "freeze_mm_mlp_adapter",
    "image_aspect_ratio",
    "num_frames",
    "extra_image_grid",
    "tokenizer_model_max_length",
    "tokenizer_padding_side",
    "architectures",
    "_name_or_path",
    "torch_dtype",
    "dtype",
    "transformers_version",
    "model_type",
}
_LANGUAGE_MODEL_TYPES = {"mistral", "mixtral", "qwen2", "llama"}
_DEFAULT_NUM_FRAMES = 8  # the original's NUM_FRAMES, used when config.json has no `num_frames`


def language_model_type(original_config: dict) -> str:
    """`videollama2_mistral` -> `mistral`; older configs say `mistral`/`qwen2` but carry `mm_*` fields."""
    model_type = original_config.get("model_type", "")
    family = model_type.removeprefix("videollama2_") if model_type != "videollama2" else "mistral"
    if family not in _LANGUAGE_MODEL_TYPES or "mm_vision_tower" not in original_config:
        raise ValueError(
            f"Not a VideoLLaMA2 checkpoint: config.json has model_type {model_type!r}"
            + ("" if "mm_vision_tower" in original_config else " and no `mm_vision_tower`")
            + f". Expected one of videollama2_{{{', '.join(sorted(_LANGUAGE_MODEL_TYPES))}}}."
        )
    return family


def convert_config(original_config: dict, vision_tower_config: dict, image_token_id: int, video_token_id: int) -> dict:
    """Kwargs for `VideoLlama2Config` from an original config.json and the tower repo's config.json.

    `vision_tower_config` may be a full CLIPConfig/SiglipConfig dict (its `vision_config` is used) or a vision config.
    """
    family = language_model_type(original_config)
    text_config = {k: v for k, v in original_config.items() if k not in _MULTIMODAL_CONFIG_KEYS}
    text_config["model_type"] = family
    vision_config = dict(vision_tower_config.get("vision_config", vision_tower_config))
    vision_config.pop("transformers_version", None)
    tower_type = vision_config.get("model_type") or vision_tower_config.get("model_type", "") + "_vision_model"
    vision_config["model_type"] = tower_type
    select_feature = original_config.get("mm_vision_select_feature", "patch")
    has_cls = tower_type == "clip_vision_model"
    return {
        "text_config": text_config,
        "vision_config": vision_config,
        "projector_type": original_config.get("mm_projector_type", "linear"),
        "num_frames": original_config.get("num_frames") or _DEFAULT_NUM_FRAMES,
        "vision_feature_layer": original_config.get("mm_vision_select_layer", -2),
        "vision_feature_select_strategy": "default" if has_cls and select_feature == "patch" else "full",
        "image_token_id": image_token_id,
        "video_token_id": video_token_id,
        "tie_word_embeddings": original_config.get("tie_word_embeddings", False),
    }
