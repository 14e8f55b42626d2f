# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""The released DAMO-NLP-SG VideoLLaMA2 checkpoints (the "original layout"), described in one place.

Both ways of reading a release go through this module: the converter (`convert_videollama2_weights_to_hf`) and the
direct loading of releases through the Auto classes (`original_checkpoint`). It owns the tensor-name table, the
translation of the original config.json, the presets of the released checkpoints (`presets/`: one file per release,
per vision tower and per language-model family), the vision-tower lookup, and the processor and tokenizer settings
of a release.

Plain Python at import time (no torch, no transformers): the converter's weight copy and `videollama2-hf info` stay
light. transformers is imported only to build a tokenizer.
"""

import json
import os
import re
from functools import cache
from pathlib import Path

from .hub import NotInCacheError, download, looks_like_repo_id
from .safetensors_copy import read_safetensors_header
from .token_counts_videollama2 import DEFAULT_DOWNSAMPLE, DEFAULT_NUM_FRAMES


# ---------------------------------------------------------------------------------------------------------------------
# Tensor names
# ---------------------------------------------------------------------------------------------------------------------
# Original key -> transformers key. The first pattern that matches wins; the patterns are disjoint and anchored, so
# applying them one after the other (as transformers' load-time renaming does) gives the same result.
ORIGINAL_TO_HF_KEY_PATTERNS: list[tuple[str, str]] = [
    # VideoLLaMA2.1-AV: BEATs keeps its names, but for its positional convolution (`pos_conv.0` of an
    # nn.Sequential) and the relative-position table, which every layer shares (it lives once on the encoder)
    (r"^model\.audio_tower\.encoder\.pos_conv\.0\.", "model.audio_tower.encoder.pos_conv."),
    (
        r"^model\.audio_tower\.encoder\.layers\.0\.self_attn\.relative_attention_bias\.",
        "model.audio_tower.encoder.relative_attention_bias.",
    ),
    # BEATs' relative-position gate, with the names of transformers' WavLM (the same gate)
    (r"^(model\.audio_tower\.encoder\.layers\.\d+\.self_attn\.)grep_linear\.", r"\1gru_rel_pos_linear."),
    (r"^(model\.audio_tower\.encoder\.layers\.\d+\.self_attn\.)grep_a$", r"\1gru_rel_pos_const"),
    (r"^model\.audio_tower\.", "model.audio_tower."),
    *[(rf"^model\.mm_projector_a\.{2 * i}\.", f"model.audio_projector.linear_{i + 1}.") for i in range(2)],
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
# Tensors of a release that no model part reads: BEATs' AudioSet classifier, and the copies of the shared relative-
# position table that the release's trainer saved under every layer beside layer 0 (identical values).
ORIGINAL_UNUSED_KEY_PATTERNS = [
    r"^model\.audio_tower\.predictor\.",
    r"^model\.audio_tower\.encoder\.layers\.[1-9]\d*\.self_attn\.relative_attention_bias\.",
]
_COMPILED_UNUSED = [re.compile(pattern) for pattern in ORIGINAL_UNUSED_KEY_PATTERNS]
# Every stored copy of BEATs' shared relative-position table (the one kept and the dropped ones).
AUDIO_SHARED_TABLE_KEY = re.compile(
    r"^model\.audio_tower\.encoder\.layers\.\d+\.self_attn\.relative_attention_bias\.weight$"
)

# Parts of a model in the transformers layout, by tensor-name prefix.
COMPONENT_PREFIXES = {
    "vision tower": "model.vision_tower.",
    "projector": "model.multi_modal_projector.",
    "audio tower": "model.audio_tower.",
    "audio projector": "model.audio_projector.",
    "language model": "model.language_model.",
    "lm head": "lm_head.",
}


def convert_original_key(key: str) -> str | None:
    """transformers name of an original checkpoint tensor, None for the tensors no model part reads
    (`ORIGINAL_UNUSED_KEY_PATTERNS`); unknown names raise, so nothing is dropped by accident."""
    if any(pattern.search(key) for pattern in _COMPILED_UNUSED):
        return None
    for pattern, replacement in _COMPILED_PATTERNS:
        if pattern.search(key):
            return pattern.sub(replacement, key)
    raise KeyError(f"Unknown tensor {key!r} in the source checkpoint: it is not part of a VideoLLaMA2 model.")


# ---------------------------------------------------------------------------------------------------------------------
# Presets: `presets/<release>.json`, `presets/vision_towers/<org>--<name>.json`, `presets/backbones/<family>.json`
# ---------------------------------------------------------------------------------------------------------------------
PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def _read_presets(folder: Path) -> list[dict]:
    files = sorted(folder.glob("*.json"))
    if not files:
        raise FileNotFoundError(f"No presets found in {folder}; the package was installed without its data.")
    return [json.loads(path.read_text()) for path in files]


@cache
def list_presets() -> dict[str, dict]:
    """Every released checkpoint by name (`VideoLLaMA2-7B`, ...)."""
    return {preset["name"]: preset for preset in _read_presets(PRESETS_DIR)}


@cache
def _vision_towers() -> dict[str, dict]:
    return {tower["id"]: tower for tower in _read_presets(PRESETS_DIR / "vision_towers")}


@cache
def _backbones() -> dict[str, dict]:
    return {backbone["family"]: backbone for backbone in _read_presets(PRESETS_DIR / "backbones")}


def get_preset(name: str) -> dict:
    """The preset called `name` (case-insensitive)."""
    presets = list_presets()
    by_lower = {key.lower(): value for key, value in presets.items()}
    if name.lower() not in by_lower:
        raise ValueError(f"Unknown preset {name!r}. Available presets: {', '.join(presets)} (see --list-presets).")
    return by_lower[name.lower()]


def format_presets() -> str:
    """A table of the presets, for `--list-presets`."""
    columns = ("name", "kind", "backbone", "num_frames", "projector_type", "vision_tower", "source")
    rows = [("name", "kind", "backbone", "frames", "projector", "vision tower", "source")]
    rows += [tuple(str(preset[column]) for column in columns) for preset in list_presets().values()]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def detect_preset(source: str, original_config: dict, kind: str) -> dict | None:
    """The preset of a source: by repo id / folder name first, then by what config.json describes. None if no
    released checkpoint looks like it (e.g. a fine-tuned model with another connector)."""
    presets = list_presets()
    name = str(source).rstrip("/\\").replace("\\", "/").split("/")[-1].lower()
    for preset in presets.values():
        if str(source).lower() == preset["source"].lower() or name == preset["name"].lower():
            return preset
    tower = known_vision_tower(original_config.get("mm_vision_tower", ""))
    signature = (
        language_model_type(original_config),
        kind,
        original_config.get("num_frames") or DEFAULT_NUM_FRAMES,
        original_config.get("mm_projector_type", "linear"),
        tower["id"] if tower else None,
        is_audio_visual(original_config),
    )
    matches = [preset for preset in presets.values() if _preset_signature(preset) == signature]
    return matches[0] if len(matches) == 1 else None


def _preset_signature(preset: dict) -> tuple:
    return (
        preset["backbone"],
        preset["kind"],
        preset["num_frames"],
        preset["projector_type"],
        preset["vision_tower"],
        preset.get("audio_visual", False),
    )


def backbone_defaults(family: str) -> dict:
    """Chat template name and generation defaults of a language-model family (`mistral`, `qwen2`, ...)."""
    if family not in _backbones():
        raise ValueError(f"No preset describes a {family!r} language model; known: {sorted(_backbones())}.")
    return _backbones()[family]


def known_vision_tower(tower_id: str) -> dict | None:
    """A released tower (`{"id", "config", "image_processor"}`) by Hub id, or by folder name when a training run
    recorded the path of a local copy (`/models/clip-vit-large-patch14-336`)."""
    towers = _vision_towers()
    if tower_id in towers:
        return towers[tower_id]
    name = str(tower_id).rstrip("/\\").replace("\\", "/").split("/")[-1]
    return next((tower for tower_key, tower in towers.items() if tower_key.split("/")[-1] == name), None)


# ---------------------------------------------------------------------------------------------------------------------
# config.json of a release
# ---------------------------------------------------------------------------------------------------------------------
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
    # VideoLLaMA2.1-AV
    "mm_audio_tower",
    "mm_hidden_size_a",
    "hidden_size_a",
    "mm_projector_a_type",
    "mm_projector_a_lr",
    "tune_mm_mlp_adapter_a",
    "freeze_mm_mlp_adapter_a",
    "tune_audio_tower",
}


def is_original_config(config_dict: dict | None) -> bool:
    """True for the config.json of a release (original layout), whatever its `model_type` says."""
    return bool(config_dict) and "mm_vision_tower" in config_dict and "text_config" not in config_dict


def language_model_type(original_config: dict) -> str:
    """`videollama2_mistral` -> `mistral`; older configs say `mistral`/`qwen2` but carry `mm_*` fields."""
    model_type = original_config.get("model_type", "")
    family = model_type.removeprefix("videollama2_") if model_type != "videollama2" else "mistral"
    if family not in _backbones() or "mm_vision_tower" not in original_config:
        raise ValueError(
            f"Not a VideoLLaMA2 checkpoint in the original layout: config.json has model_type {model_type!r}"
            + ("" if "mm_vision_tower" in original_config else " and no `mm_vision_tower`")
            + f". Expected one of videollama2_{{{', '.join(sorted(_backbones()))}}}."
        )
    return family


def is_audio_visual(original_config: dict) -> bool:
    """True for a VideoLLaMA2.1-AV release (it has a BEATs audio tower)."""
    return "mm_audio_tower" in original_config


def audio_encoder_config(shapes: dict[str, list[int]] | None = None) -> dict:
    """`VideoLlama2AudioEncoderConfig` keyword arguments of a release's audio tower.

    The original never stores its BEATs config: it builds the encoder from its code defaults (BEATs iter3+, the
    config class's defaults here). The sizes are read back from the tensor shapes when the release's weight headers
    are at hand (`shapes`: original tensor name -> shape), so that any width (the test fixtures' included) loads.
    """
    config = {"model_type": "videollama2_audio_encoder"}
    if not shapes:
        return config
    tower = {key.removeprefix("model.audio_tower."): shape for key, shape in shapes.items() if "audio_tower." in key}
    patch = tower["patch_embedding.weight"]  # (patch_embedding_dim, 1, patch, patch)
    positional = tower["encoder.pos_conv.0.weight_v"]  # (hidden, hidden / groups, kernel)
    hidden = tower["post_extract_proj.weight"][0]
    return {
        **config,
        "patch_embedding_dim": patch[0],
        "patch_size": patch[2],
        "patch_embedding_bias": "patch_embedding.bias" in tower,
        "hidden_size": hidden,
        "intermediate_size": tower["encoder.layers.0.fc1.weight"][0],
        "num_hidden_layers": len({key.split(".")[2] for key in tower if key.startswith("encoder.layers.")}),
        "num_attention_heads": tower["encoder.layers.0.self_attn.grep_a"][1],
        "num_conv_pos_embeddings": positional[2],
        "num_conv_pos_embedding_groups": hidden // positional[1],
        "num_buckets": tower["encoder.layers.0.self_attn.relative_attention_bias.weight"][0],
    }


def local_tensor_shapes(path_or_repo_id) -> dict[str, list[int]] | None:
    """Original tensor name -> shape, from the safetensors headers of a local release (None for a Hub id: reading
    them there would mean downloading the shards)."""
    folder = Path(path_or_repo_id).expanduser()
    if not folder.is_dir():
        return None
    headers = [read_safetensors_header(path) for path in sorted(folder.glob("model*.safetensors"))]
    return {name: shape for header in headers for name, (_, shape, _, _) in header.tensors.items()}


def _mlp_depth(projector_type: str) -> int | None:
    """Linear layers of the original's MLP projector names: 1 for `linear`, N for `mlp<N>x_gelu`; None otherwise."""
    if projector_type == "linear":
        return 1
    match = re.fullmatch(r"mlp(\d+)x_gelu", projector_type)
    return int(match.group(1)) if match and int(match.group(1)) >= 1 else None


def projector_settings(original_config: dict) -> dict:
    """`VideoLlama2Config` connector fields of a release's `mm_projector_type` (and, for an audio-visual release,
    `mm_projector_a_type`): the STC/STP connectors keep their names, the original's `linear` / `mlp<N>x_gelu`
    mean-pool projectors become the `mlp` connector of that depth."""
    projector_type = original_config.get("mm_projector_type", "linear")
    depth = _mlp_depth(projector_type)
    settings = (
        {"projector_type": projector_type}
        if depth is None
        else {"projector_type": "mlp", "projector_mlp_depth": depth}
    )
    if is_audio_visual(original_config):
        audio_type = original_config.get("mm_projector_a_type", "mlp2x_gelu")
        audio_depth = _mlp_depth(audio_type)
        if audio_depth is None:
            raise ValueError(
                f"Unsupported mm_projector_a_type {audio_type!r}: VideoLLaMA2.1-AV releases use 'linear' or "
                "'mlp<N>x_gelu'."
            )
        settings["audio_projector_depth"] = audio_depth
    return settings


def convert_config(
    original_config: dict,
    vision_tower_config: dict,
    image_token_id: int,
    video_token_id: int,
    audio_token_id: int | None = None,
    audio_config: dict | None = None,
) -> dict:
    """`VideoLlama2Config` keyword arguments from a release's config.json and its tower's config.json (and, for an
    audio-visual release, the `<audio>` token id and `audio_encoder_config`).

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
        **projector_settings(original_config),
        "num_frames": original_config.get("num_frames") or DEFAULT_NUM_FRAMES,
        "vision_feature_layer": original_config.get("mm_vision_select_layer", -2),
        "vision_feature_select_strategy": "default" if has_cls and select_feature == "patch" else "full",
        "image_token_id": image_token_id,
        "video_token_id": video_token_id,
        "tie_word_embeddings": original_config.get("tie_word_embeddings", False),
        **(
            {
                "audio_config": audio_config or audio_encoder_config(),
                "audio_token_id": audio_token_id,
            }
            if is_audio_visual(original_config)
            else {}
        ),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Reading a release (local folder or Hub repo) and finding its vision tower
# ---------------------------------------------------------------------------------------------------------------------
HUB_KWARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")
VISION_TOWER_SUBFOLDER = "vision_tower"


def hub_kwargs(kwargs: dict) -> dict:
    """The Hub download options among `from_pretrained`-style keyword arguments."""
    return {key: kwargs[key] for key in HUB_KWARGS if kwargs.get(key) is not None}


def read_json(path_or_repo_id, filename: str, **hub_options) -> dict | None:
    """A JSON file of a local folder or Hub repo; None when the folder or repo does not have it."""
    folder = Path(path_or_repo_id).expanduser()
    if folder.is_dir():
        path = folder / hub_options.get("subfolder", "") / filename
        return json.loads(path.read_text()) if path.is_file() else None
    if not looks_like_repo_id(str(path_or_repo_id)):
        return None
    from huggingface_hub.errors import RepositoryNotFoundError

    options = {
        key: hub_options[key] for key in ("cache_dir", "token", "revision", "local_files_only") if key in hub_options
    }
    name = f"{hub_options['subfolder']}/{filename}" if hub_options.get("subfolder") else filename
    try:
        path = download(str(path_or_repo_id), [name], **options) / name
    except (RepositoryNotFoundError, NotInCacheError):
        return None
    return json.loads(path.read_text()) if path.is_file() else None


def _tower_from(path_or_repo_id, **hub_options) -> dict | None:
    """The tower settings of a folder or Hub repo holding config.json + preprocessor_config.json."""
    config = read_json(path_or_repo_id, "config.json", **hub_options)
    if config is None:
        return None
    image_processor = read_json(path_or_repo_id, "preprocessor_config.json", **hub_options)
    if image_processor is None:
        raise ValueError(f"The vision tower {path_or_repo_id} has a config.json but no preprocessor_config.json.")
    return {"id": str(path_or_repo_id), "config": config, "image_processor": image_processor}


def resolve_vision_tower(original_config: dict, checkpoint=None, vision_tower=None, **hub_options) -> dict:
    """`{"id", "config", "image_processor"}` of the vision tower a release names in `mm_vision_tower`.

    The releases hold the tower's weights but not its config, only its Hub id. Looked up, in this order: the
    `vision_tower` argument (a folder or Hub id), a `vision_tower/` folder inside a local checkpoint,
    `mm_vision_tower` itself when it is a local folder, the presets (which describe the towers of every release),
    then the Hub repo `mm_vision_tower` names.
    """
    tower_id = original_config["mm_vision_tower"]
    tower_options = {key: value for key, value in hub_options.items() if key not in ("revision", "subfolder")}
    if vision_tower is not None:
        found = _tower_from(vision_tower, **tower_options)
        if found is None:
            raise ValueError(f"`vision_tower={str(vision_tower)!r}` is not a folder or Hub repo with a config.json.")
        return found
    local = [Path(checkpoint) / VISION_TOWER_SUBFOLDER] if checkpoint and os.path.isdir(checkpoint) else []
    for folder in [*local, Path(tower_id).expanduser()]:
        if folder.is_dir() and (found := _tower_from(folder)) is not None:
            return found
    found = known_vision_tower(tower_id)
    if found is None and looks_like_repo_id(tower_id):
        found = _tower_from(tower_id, **tower_options)
    if found is None:
        raise ValueError(
            f"Cannot find the config of the vision tower {tower_id!r} named by `mm_vision_tower`. Pass "
            "`vision_tower=<folder or Hub id with the tower's config.json and preprocessor_config.json>` "
            f"(--vision-tower on the command line) or put those files in a `{VISION_TOWER_SUBFOLDER}/` folder inside "
            "the checkpoint."
        )
    return found


# ---------------------------------------------------------------------------------------------------------------------
# Tokenizer, chat template and processor settings of a release
# ---------------------------------------------------------------------------------------------------------------------
CHAT_TEMPLATE_DIR = Path(__file__).resolve().parent / "chat_templates"
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
)


def load_chat_template(family: str) -> str:
    """The chat template of a language-model family (`mistral`, `mixtral`, `qwen2`, `llama`)."""
    return (CHAT_TEMPLATE_DIR / f"{backbone_defaults(family)['chat_template']}.jinja").read_text()


def load_original_tokenizer(path_or_repo_id, audio: bool = False, **kwargs):
    """The released tokenizer with `<image>`/`<video>` (and, for an audio-visual release, `<audio>`) appended as
    special tokens.

    The generic `TokenizersBackend` runs the checkpoint's own tokenizer.json pipeline; transformers 5's
    `LlamaTokenizer` rebuilds a Metaspace pipeline that drops the legacy "▁" after `<s>`, which would change the
    original's input ids.
    """
    from transformers import TokenizersBackend

    placeholders = {
        "image_token": "<image>",
        "video_token": "<video>",
        **({"audio_token": "<audio>"} if audio else {}),
    }
    tokenizer = TokenizersBackend.from_pretrained(path_or_repo_id, extra_special_tokens=placeholders, **kwargs)
    if tokenizer.pad_token is None:  # the original sets pad = unk when missing
        tokenizer.pad_token = tokenizer.unk_token
    tokenizer.padding_side = "left"  # batched generation; the original only padded (right) for training
    return tokenizer


# The settings the towers' own image processors (CLIPImageProcessorPil, SiglipImageProcessorPil) default to where a
# tower's preprocessor_config.json is silent (checked against the transformers classes in the tests).
_TOWER_PIXEL_DEFAULTS = {
    "clip_vision_model": {
        "do_center_crop": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
    },
    "siglip_vision_model": {
        "do_center_crop": False,
        "crop_size": None,
        "image_mean": [0.5] * 3,
        "image_std": [0.5] * 3,
    },
}
_PIXEL_SETTINGS = (
    "do_resize",
    "size",
    "resample",
    "do_center_crop",
    "crop_size",
    "do_rescale",
    "rescale_factor",
    "do_normalize",
    "image_mean",
    "image_std",
    "do_convert_rgb",
)


def processor_settings(image_processor_settings: dict, config: dict) -> dict:
    """The processor of a release as keyword arguments: `{"image_processor", "video_processor", "processor"}`.

    `config` holds `VideoLlama2Config` keyword arguments (`convert_config`). Images and video frames get exactly the
    tower's pixel pipeline with PIL, whose bicubic resize is what the original computed, with every pixel setting
    written out since both processor classes default to CLIP's. (An audio-visual release adds the filterbank
    extractor with its defaults, the original's.)
    """
    tower_type = config["vision_config"]["model_type"]
    settings = {key: value for key, value in image_processor_settings.items() if key in _PIXEL_SETTINGS}
    if isinstance(settings.get("size"), int):  # legacy CLIPFeatureExtractor fields
        side = settings["size"]
        settings["size"] = (
            {"shortest_edge": side} if tower_type == "clip_vision_model" else {"height": side, "width": side}
        )
    if isinstance(settings.get("crop_size"), int):
        settings["crop_size"] = {"height": settings["crop_size"], "width": settings["crop_size"]}
    pixels = {**_TOWER_PIXEL_DEFAULTS[tower_type], **settings}
    if not pixels["do_center_crop"]:
        pixels["crop_size"] = None
    return {
        "image_processor": pixels,
        "video_processor": {**pixels, "num_frames": config["num_frames"]},
        "processor": {
            "projector_type": config["projector_type"],
            "patch_size": config["vision_config"]["patch_size"],
            "projector_downsample": list(config.get("projector_downsample", DEFAULT_DOWNSAMPLE)),
        },
    }


__all__ = [
    "COMPONENT_PREFIXES",
    "ORIGINAL_TO_HF_KEY_PATTERNS",
    "ORIGINAL_UNUSED_KEY_PATTERNS",
    "backbone_defaults",
    "audio_encoder_config",
    "convert_config",
    "convert_original_key",
    "detect_preset",
    "format_presets",
    "get_preset",
    "is_audio_visual",
    "is_original_config",
    "known_vision_tower",
    "list_presets",
    "load_chat_template",
    "load_original_tokenizer",
    "local_tensor_shapes",
    "processor_settings",
    "looks_like_repo_id",
    "read_json",
    "resolve_vision_tower",
]
