# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Load the released DAMO-NLP-SG VideoLLaMA2 checkpoints (original layout) directly, without a conversion step.

After `import videollama2_hf`:

* `AutoConfig.from_pretrained(original)` reads the original `config.json` (model_type `videollama2_mistral`,
  `videollama2_mixtral`, `videollama2_qwen2` or `videollama2_llama`) and returns a `VideoLlama2Config`, translated by
  `convert_config` (the converter's single source for config translation);
* `AutoModelForImageTextToText.from_pretrained(original)` renames the original tensor names at load time with the
  converter's `ORIGINAL_TO_HF_KEY_PATTERNS` (registered with `register_checkpoint_conversion_mapping`). The renaming
  is one-way: `save_pretrained` of such a model writes the HF layout and a `videollama2` config.json;
* `VideoLlama2Processor.from_pretrained(original)` / `AutoProcessor.from_pretrained(original)` build the processor
  from the original tokenizer and the vision tower's preprocessing settings.

The released checkpoints do not contain the vision tower's config: only its Hub id (`mm_vision_tower`). It is
resolved, in this order, from the `vision_tower=` keyword (a local folder or Hub id holding the tower's `config.json`
and `preprocessor_config.json`), a `vision_tower/` sub-folder of the checkpoint, `mm_vision_tower` itself when it is
a local folder, then the converter's presets (`configuration/*.json`, which cover the towers of every released
checkpoint: `openai/clip-vit-large-patch14-336`, `google/siglip-so400m-patch14-384`); any other tower is fetched from
the Hub.

This module imports only transformers, huggingface_hub and relative modules, so it can ship as remote code.
"""

import json
import os
from pathlib import Path

from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import WeightRenaming
from transformers.utils import cached_file, logging

from .configuration_videollama2 import VideoLlama2Config
from .convert_videollama2_weights_to_hf import ORIGINAL_TO_HF_KEY_PATTERNS, convert_config


logger = logging.get_logger(__name__)

ORIGINAL_MODEL_TYPES = ("videollama2_mistral", "videollama2_mixtral", "videollama2_qwen2", "videollama2_llama")

_HUB_KWARGS = ("cache_dir", "force_download", "proxies", "token", "revision", "local_files_only", "subfolder")
VISION_TOWER_SUBFOLDER = "vision_tower"


def _hub_kwargs(kwargs: dict) -> dict:
    return {key: kwargs[key] for key in _HUB_KWARGS if kwargs.get(key) is not None}


def _read_json(path_or_repo_id, filename: str, **hub_kwargs) -> dict | None:
    """A JSON file of a local folder or Hub repo, or None when it is absent (or unreachable)."""
    hub_kwargs = {k: v for k, v in hub_kwargs.items() if k != "subfolder"}
    path = cached_file(
        str(path_or_repo_id),
        filename,
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        _raise_exceptions_for_gated_repo=False,
        **hub_kwargs,
    )
    return json.loads(Path(path).read_text()) if path else None


def is_original_config(config_dict: dict | None) -> bool:
    """True for the config.json of a released (original-layout) VideoLLaMA2 checkpoint."""
    return bool(config_dict) and "mm_vision_tower" in config_dict and "text_config" not in config_dict


def is_original_checkpoint(path_or_repo_id, **kwargs) -> bool:
    """An original-layout checkpoint has a config.json with `mm_vision_tower` and no processor_config.json."""
    hub_kwargs = _hub_kwargs(kwargs)
    if _read_json(path_or_repo_id, "processor_config.json", **hub_kwargs) is not None:
        return False
    return is_original_config(_read_json(path_or_repo_id, "config.json", **hub_kwargs))


def _tower_from_preset(tower_id: str) -> dict | None:
    """The tower as the converter's presets (one JSON per released checkpoint) describe it, if one names it."""
    from .convert_videollama2_weights_to_hf import known_vision_tower

    try:
        tower = known_vision_tower(tower_id)
    except FileNotFoundError:  # installed without the presets data
        return None
    return None if tower is None else {"vision_config": tower["config"], "image_processor": tower["image_processor"]}


def _tower_from_folder(path_or_repo_id, **hub_kwargs) -> dict | None:
    vision_config = _read_json(path_or_repo_id, "config.json", **hub_kwargs)
    if vision_config is None:
        return None
    image_processor = _read_json(path_or_repo_id, "preprocessor_config.json", **hub_kwargs)
    if image_processor is None:
        raise ValueError(f"The vision tower {path_or_repo_id} has a config.json but no preprocessor_config.json.")
    return {"vision_config": vision_config, "image_processor": image_processor}


def resolve_vision_tower(original_config: dict, checkpoint=None, vision_tower=None, **hub_kwargs) -> dict:
    """`{"vision_config": ..., "image_processor": ...}` of the tower named by an original config (see module doc)."""
    tower_id = original_config["mm_vision_tower"]
    if vision_tower is not None:
        if isinstance(vision_tower, dict):
            return vision_tower
        found = _tower_from_folder(vision_tower, **{k: v for k, v in hub_kwargs.items() if k != "revision"})
        if found is None:
            raise ValueError(f"`vision_tower={vision_tower!r}` has no config.json.")
        return found
    if checkpoint is not None and os.path.isdir(checkpoint) and (Path(checkpoint) / VISION_TOWER_SUBFOLDER).is_dir():
        found = _tower_from_folder(Path(checkpoint) / VISION_TOWER_SUBFOLDER)
        if found is not None:
            return found
    if os.path.isdir(tower_id):
        found = _tower_from_folder(tower_id)
        if found is not None:
            return found
    found = _tower_from_preset(tower_id)
    if found is None:
        try:
            found = _tower_from_folder(tower_id, **{k: v for k, v in hub_kwargs.items() if k != "revision"})
        except OSError:
            found = None
    if found is None:
        raise ValueError(
            f"Cannot find the config of the vision tower {tower_id!r} named by `mm_vision_tower`. Pass "
            "`vision_tower=<folder or Hub id with the tower's config.json and preprocessor_config.json>` "
            f"or put those files in a `{VISION_TOWER_SUBFOLDER}/` folder inside the checkpoint."
        )
    return found


def _placeholder_token_ids(checkpoint, **hub_kwargs) -> tuple[int, int]:
    from .processing_videollama2 import load_original_tokenizer

    tokenizer = load_original_tokenizer(checkpoint, **hub_kwargs)
    return tokenizer.image_token_id, tokenizer.video_token_id


def original_config_to_dict(original_config: dict, checkpoint=None, vision_tower=None, **kwargs) -> dict:
    """`VideoLlama2Config` kwargs for an original config.json (tower resolved as described in the module doc).

    `checkpoint` (folder or Hub id) provides the tokenizer, whose `<image>`/`<video>` ids the config records."""
    hub_kwargs = _hub_kwargs(kwargs)
    tower = resolve_vision_tower(original_config, checkpoint, vision_tower, **hub_kwargs)
    if checkpoint is None:
        raise ValueError("The placeholder token ids come from the checkpoint's tokenizer: pass `checkpoint`.")
    image_token_id, video_token_id = _placeholder_token_ids(checkpoint, **hub_kwargs)
    config = convert_config(original_config, tower["vision_config"], image_token_id, video_token_id)
    dtype = original_config.get("dtype", original_config.get("torch_dtype"))
    if dtype is not None:
        config["dtype"] = dtype
    return config


def load_original_config(path_or_repo_id, vision_tower=None, **kwargs) -> VideoLlama2Config:
    """The `VideoLlama2Config` of a released checkpoint, whatever model_type its config.json states.

    The Auto classes need `videollama2_*` model types; some releases say `mistral` or `qwen2` (VideoLLaMA2-72B), which
    transformers maps to its own text-only models. For those, pass this config explicitly:
    `VideoLlama2ForConditionalGeneration.from_pretrained(path, config=load_original_config(path))`.
    """
    hub_kwargs = _hub_kwargs(kwargs)
    original_config = _read_json(path_or_repo_id, "config.json", **hub_kwargs)
    if not is_original_config(original_config):
        raise ValueError(f"{path_or_repo_id} is not an original-layout VideoLLaMA2 checkpoint (no `mm_vision_tower`).")
    return VideoLlama2Config(
        **original_config_to_dict(original_config, str(path_or_repo_id), vision_tower, **hub_kwargs),
        name_or_path=str(path_or_repo_id),
    )


class VideoLlama2OriginalConfig(PreTrainedConfig):
    """Reader for the `config.json` of a released checkpoint: `from_dict` returns a [`VideoLlama2Config`].

    Registered with `AutoConfig` under the original model types; never instantiated itself. Accepts
    `vision_tower=` (see the module docstring) as an extra keyword of `from_pretrained`.
    """

    model_type = "videollama2_mistral"

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        config_dict = dict(config_dict)
        vision_tower = kwargs.pop("vision_tower", None)
        checkpoint = kwargs.get("name_or_path") or config_dict.get("_name_or_path")
        hf_dict = original_config_to_dict(config_dict, checkpoint, vision_tower, **kwargs)
        for key in _HUB_KWARGS + ("_commit_hash",):
            kwargs.pop(key, None)
        return VideoLlama2Config.from_dict(hf_dict, **kwargs)


class VideoLlama2OriginalMixtralConfig(VideoLlama2OriginalConfig):
    model_type = "videollama2_mixtral"


class VideoLlama2OriginalQwen2Config(VideoLlama2OriginalConfig):
    model_type = "videollama2_qwen2"


class VideoLlama2OriginalLlamaConfig(VideoLlama2OriginalConfig):
    model_type = "videollama2_llama"


ORIGINAL_CONFIG_CLASSES = (
    VideoLlama2OriginalConfig,
    VideoLlama2OriginalMixtralConfig,
    VideoLlama2OriginalQwen2Config,
    VideoLlama2OriginalLlamaConfig,
)


class OriginalLayoutRenaming(WeightRenaming):
    """A load-time renaming from the original layout whose reverse is itself: its source patterns (original names)
    never match an HF-layout name, so `save_pretrained` leaves the HF names alone and writes the HF layout."""

    __slots__ = ()

    def reverse_transform(self):
        return self


def original_key_renamings() -> list[WeightRenaming]:
    """The converter's key table as load-time renamings (identity entries dropped)."""
    return [
        OriginalLayoutRenaming(source, target)
        for source, target in ORIGINAL_TO_HF_KEY_PATTERNS
        if source.strip("^$").replace("\\", "") != target
    ]


def original_processor(path_or_repo_id, vision_tower=None, **kwargs):
    """`VideoLlama2Processor` of an original-layout checkpoint (tokenizer + tower preprocessing + config)."""
    from .processing_videollama2 import VideoLlama2Processor, load_original_tokenizer

    hub_kwargs = _hub_kwargs(kwargs)
    original_config = _read_json(path_or_repo_id, "config.json", **hub_kwargs)
    if not is_original_config(original_config):
        raise ValueError(f"{path_or_repo_id} is not an original-layout VideoLLaMA2 checkpoint.")
    tower = resolve_vision_tower(original_config, path_or_repo_id, vision_tower, **hub_kwargs)
    tokenizer = load_original_tokenizer(path_or_repo_id, **hub_kwargs)
    config = VideoLlama2Config(
        **convert_config(original_config, tower["vision_config"], tokenizer.image_token_id, tokenizer.video_token_id)
    )
    return VideoLlama2Processor.from_original(tokenizer, tower["image_processor"], config)


def register_original_checkpoints() -> None:
    """Make the released checkpoints load through the Auto classes (called on `import videollama2_hf`)."""
    for config_class in ORIGINAL_CONFIG_CLASSES:
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    # keyed by model_type: covers VideoLlama2ForConditionalGeneration and VideoLlama2Model
    register_checkpoint_conversion_mapping(VideoLlama2Config.model_type, original_key_renamings(), overwrite=True)


__all__ = [
    "ORIGINAL_MODEL_TYPES",
    "is_original_checkpoint",
    "load_original_config",
    "original_config_to_dict",
    "original_processor",
    "register_original_checkpoints",
    "resolve_vision_tower",
]
