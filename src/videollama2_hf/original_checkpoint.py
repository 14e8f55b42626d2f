# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Load the released DAMO-NLP-SG checkpoints (original layout) without a conversion step.

After `import videollama2_hf` (which calls `register_original_checkpoints`), through transformers' public
registration hooks only (the model files know nothing of this layout):

* `AutoConfig.from_pretrained(release)` reads the original config.json (model_type `videollama2_mistral`,
  `videollama2_mixtral`, `videollama2_qwen2` or `videollama2_llama`) and returns a `VideoLlama2Config`;
* `AutoModelForImageTextToText.from_pretrained(release)` renames the original tensor names at load time. The
  renaming is one-way: `save_pretrained` of such a model writes the transformers layout.

A release carries no processor files: `load_original_processor(release)` builds its processor from the release's
tokenizer and its vision tower's preprocessing settings (`save_pretrained` it beside the model to get a folder that
`AutoProcessor` reads).

Everything these readers know about the layout comes from `original_layout`; `vision_tower=` (a folder or Hub id)
points at the tower's config when the presets and the checkpoint do not have it (see `resolve_vision_tower`).
"""

from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import WeightRenaming

from .configuration_videollama2 import VideoLlama2Config
from .feature_extraction_videollama2 import VideoLlama2FeatureExtractor
from .image_processing_videollama2 import VideoLlama2ImageProcessor
from .original_layout import (
    HUB_KWARGS,
    ORIGINAL_TO_HF_KEY_PATTERNS,
    audio_encoder_config,
    convert_config,
    hub_kwargs,
    is_audio_visual,
    is_original_config,
    load_chat_template,
    load_original_tokenizer,
    local_tensor_shapes,
    processor_settings,
    read_json,
    resolve_vision_tower,
)
from .processing_videollama2 import VideoLlama2Processor
from .video_processing_videollama2 import VideoLlama2VideoProcessor


def _read_original_config(path_or_repo_id, **kwargs) -> dict:
    config = read_json(path_or_repo_id, "config.json", **hub_kwargs(kwargs))
    if not is_original_config(config):
        raise ValueError(
            f"{path_or_repo_id} is not a VideoLLaMA2 checkpoint in the original layout (no config.json "
            "with `mm_vision_tower`)."
        )
    return config


def _translate(
    original_config: dict, checkpoint, vision_tower=None, tokenizer=None, shapes=None, **kwargs
) -> tuple[dict, dict]:
    """(`VideoLlama2Config` keyword arguments, the vision tower's settings) of a release, with the placeholder ids
    its tokenizer gets and, for an audio-visual release, its audio encoder's sizes read from `shapes` (the weight
    headers' tensor shapes; without them, the encoder's defaults: enough for the processor)."""
    options = hub_kwargs(kwargs)
    audio = is_audio_visual(original_config)
    tower = resolve_vision_tower(original_config, checkpoint, vision_tower, **options)
    tokenizer = tokenizer or load_original_tokenizer(checkpoint, audio=audio, **options)
    config = convert_config(
        original_config,
        tower["config"],
        tokenizer.image_token_id,
        tokenizer.video_token_id,
        audio_token_id=tokenizer.audio_token_id if audio else None,
        audio_config=audio_encoder_config(shapes) if audio else None,
    )
    return config, tower


def original_config_to_dict(original_config: dict, checkpoint, vision_tower=None, tokenizer=None, **kwargs) -> dict:
    """`VideoLlama2Config` keyword arguments of a release (its tokenizer is loaded from `checkpoint` unless given)."""
    shapes = local_tensor_shapes(checkpoint) if is_audio_visual(original_config) else None
    config, _ = _translate(original_config, checkpoint, vision_tower, tokenizer, shapes, **kwargs)
    dtype = original_config.get("dtype", original_config.get("torch_dtype"))
    if dtype is not None:
        config["dtype"] = dtype
    return config


def load_original_config(path_or_repo_id, vision_tower=None, **kwargs) -> VideoLlama2Config:
    """The `VideoLlama2Config` of a release, whatever model_type its config.json states.

    The Auto classes need `videollama2_*` model types; some releases say `mistral` or `qwen2` (VideoLLaMA2-72B), which
    transformers maps to its own text-only models. For those, pass this config explicitly:
    `VideoLlama2ForConditionalGeneration.from_pretrained(path, config=load_original_config(path))`.
    """
    original_config = _read_original_config(path_or_repo_id, **kwargs)
    return VideoLlama2Config(
        **original_config_to_dict(original_config, str(path_or_repo_id), vision_tower, **kwargs),
        name_or_path=str(path_or_repo_id),
    )


def build_processor(tokenizer, tower_image_processor: dict, config: dict) -> VideoLlama2Processor:
    """The `VideoLlama2Processor` of a release from its tokenizer (`load_original_tokenizer`), its tower's
    preprocessor_config.json and its `VideoLlama2Config` keyword arguments (`convert_config`)."""
    settings = processor_settings(tower_image_processor, config)
    audio = {"feature_extractor": VideoLlama2FeatureExtractor()} if "audio_config" in config else {}
    return VideoLlama2Processor(
        image_processor=VideoLlama2ImageProcessor(**settings["image_processor"]),
        video_processor=VideoLlama2VideoProcessor(**settings["video_processor"]),
        tokenizer=tokenizer,
        chat_template=load_chat_template(config["text_config"]["model_type"]),
        **audio,
        **settings["processor"],
    )


def load_original_processor(
    path_or_repo_id, vision_tower=None, original_config: dict | None = None, **kwargs
) -> VideoLlama2Processor:
    """`VideoLlama2Processor` of a release: its tokenizer, its tower's preprocessing, its config (and, for an
    audio-visual release, the original's filterbank). `original_config`: its config.json, when already read."""
    original_config = original_config or _read_original_config(path_or_repo_id, **kwargs)
    tokenizer = load_original_tokenizer(path_or_repo_id, audio=is_audio_visual(original_config), **hub_kwargs(kwargs))
    config, tower = _translate(original_config, path_or_repo_id, vision_tower, tokenizer, **kwargs)
    return build_processor(tokenizer, tower["image_processor"], config)


class VideoLlama2OriginalConfig(PreTrainedConfig):
    """Reader for the config.json of a release: `from_dict` returns a [`VideoLlama2Config`].

    Registered with `AutoConfig` under the original model types; never instantiated itself. Accepts `vision_tower=`
    as an extra keyword of `from_pretrained`.
    """

    model_type = "videollama2_mistral"

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        vision_tower = kwargs.pop("vision_tower", None)
        checkpoint = kwargs.get("name_or_path") or config_dict.get("_name_or_path")
        hf_dict = original_config_to_dict(dict(config_dict), checkpoint, vision_tower, **kwargs)
        for key in HUB_KWARGS + ("_commit_hash",):
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
    never match a transformers name, so `save_pretrained` leaves those names alone and writes the transformers
    layout."""

    __slots__ = ()

    def reverse_transform(self):
        return self


def original_key_renamings() -> list[WeightRenaming]:
    """The key table of `original_layout` as load-time renamings (identity entries dropped)."""
    return [
        OriginalLayoutRenaming(source, target)
        for source, target in ORIGINAL_TO_HF_KEY_PATTERNS
        if source.strip("^$").replace("\\", "") != target
    ]


def register_original_checkpoints() -> None:
    """Make the releases load through `AutoConfig` and the Auto model classes."""
    for config_class in ORIGINAL_CONFIG_CLASSES:
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    # keyed by model_type: covers VideoLlama2ForConditionalGeneration and VideoLlama2Model
    register_checkpoint_conversion_mapping(VideoLlama2Config.model_type, original_key_renamings(), overwrite=True)


__all__ = [
    "build_processor",
    "load_original_config",
    "load_original_processor",
    "original_config_to_dict",
    "register_original_checkpoints",
]
