# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""VideoLLaMA2 configuration."""

import os
import shutil
from pathlib import Path
from typing import Literal

from huggingface_hub.dataclasses import strict
from transformers import AutoConfig
from transformers.configuration_utils import PreTrainedConfig, SubConfigSpec
from transformers.utils import logging

from .token_counts_videollama2 import (
    CONNECTORS,
    DEFAULT_DOWNSAMPLE,
    DEFAULT_NUM_FRAMES,
    num_audio_tokens,
    num_visual_tokens,
)


logger = logging.get_logger(__name__)

SUPPORTED_VISION_MODEL_TYPES = ("clip_vision_model", "siglip_vision_model")
SUPPORTED_TEXT_MODEL_TYPES = ("mistral", "mixtral", "qwen2", "llama")


@strict
class VideoLlama2AudioEncoderConfig(PreTrainedConfig):
    r"""
    Configuration of the BEATs audio encoder of VideoLLaMA2.1-AV. The defaults are the released model's encoder
    (BEATs iter3+ AS2M: 16 x 16 patches, 512-wide patch embedding, 12 post-LN deep-norm layers of width 768).

    Args:
        num_mel_bins (`int`, *optional*, defaults to 128):
            Mel bins of the input filterbank.
        patch_size (`int`, *optional*, defaults to 16):
            Side of the square (time x frequency) patches of the filterbank.
        patch_embedding_dim (`int`, *optional*, defaults to 512):
            Width of the patch embedding, before its projection to `hidden_size`.
        patch_embedding_bias (`bool`, *optional*, defaults to `False`):
            Whether the patch-embedding convolution has a bias.
        hidden_size (`int`, *optional*, defaults to 768):
            Width of the transformer layers and of the encoder output.
        intermediate_size (`int`, *optional*, defaults to 3072):
            Width of the feed-forward layers.
        num_hidden_layers (`int`, *optional*, defaults to 12):
            Number of transformer layers.
        num_attention_heads (`int`, *optional*, defaults to 12):
            Attention heads per layer.
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the feed-forward layers (exact GELU in the original).
        num_conv_pos_embeddings (`int`, *optional*, defaults to 128):
            Kernel size of the convolutional position embedding.
        num_conv_pos_embedding_groups (`int`, *optional*, defaults to 16):
            Groups of the convolutional position embedding.
        num_buckets (`int`, *optional*, defaults to 320):
            Relative-position buckets (half for each direction) of the attention bias.
        max_distance (`int`, *optional*, defaults to 800):
            Distance beyond which relative positions share the last bucket.
        layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of every LayerNorm.
        hidden_dropout (`float`, *optional*, defaults to 0.0):
            Dropout on the projected patch embeddings and on the outputs of attention and feed-forward blocks.
        attention_dropout (`float`, *optional*, defaults to 0.0):
            Dropout on the attention probabilities.
        activation_dropout (`float`, *optional*, defaults to 0.0):
            Dropout after the feed-forward activation.
        layerdrop (`float`, *optional*, defaults to 0.05):
            Probability of skipping a whole layer during training (never at inference).
        fbank_mean (`float`, *optional*, defaults to 15.41663):
            Mean subtracted from the filterbank before the patch embedding.
        fbank_std (`float`, *optional*, defaults to 6.55582):
            Standard deviation of the filterbank; the original divides by twice this value.
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the normal initialiser of embeddings.
    """

    model_type = "videollama2_audio_encoder"
    base_config_key = "audio_config"

    num_mel_bins: int = 128
    patch_size: int = 16
    patch_embedding_dim: int = 512
    patch_embedding_bias: bool = False
    hidden_size: int = 768
    intermediate_size: int = 3072
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    hidden_act: str = "gelu"
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    num_buckets: int = 320
    max_distance: int = 800
    layer_norm_eps: float = 1e-5
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    layerdrop: float = 0.05
    fbank_mean: float = 15.41663
    fbank_std: float = 6.55582
    initializer_range: float = 0.02

    def validate_architecture(self):
        """Reject sizes the encoder cannot build, at config time rather than deep inside `forward`."""
        super().validate_architecture()
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})."
            )
        if self.hidden_size % self.num_conv_pos_embedding_groups:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_conv_pos_embedding_groups "
                f"({self.num_conv_pos_embedding_groups})."
            )
        if self.num_buckets % 2:
            raise ValueError(f"num_buckets must be even (half per direction), got {self.num_buckets}.")

    def get_num_audio_tokens(self, num_frames: int) -> int:
        """Encoder output length for a filterbank of `num_frames` frames (1496 for the 2998 frames of 30 s)."""
        return num_audio_tokens(num_frames, self.num_mel_bins, self.patch_size)


@strict
class VideoLlama2Config(PreTrainedConfig):
    r"""
    Configuration of a VideoLLaMA2 model: a CLIP or SigLIP vision tower, a spatial-temporal connector and a
    Mistral / Mixtral / Qwen2 / Llama language model; VideoLLaMA2.1-AV adds a BEATs audio encoder and its projector.

    Args:
        vision_config (`dict` or `PreTrainedConfig`, *optional*):
            Vision tower config (`clip_vision_model` or `siglip_vision_model`). Defaults to CLIP ViT-L/14-336.
        text_config (`dict` or `PreTrainedConfig`, *optional*):
            Language model config (`mistral`, `mixtral`, `qwen2` or `llama`). Defaults to Mistral-7B.
        projector_type (`str`, *optional*, defaults to `"stc_connector"`):
            Connector between tower and LLM: `stc_connector` (VideoLLaMA2), `stc_connector_v35` (VideoLLaMA2.1),
            `stp_connector`, or `mlp` (frames averaged, then an MLP of `projector_mlp_depth` layers).
        projector_depth (`int`, *optional*, defaults to 4):
            Number of RegNet bottleneck blocks in each of the two RegStages of the STC/STP connectors.
        projector_mlp_depth (`int`, *optional*, defaults to 2):
            Number of linear layers of the connector's readout MLP (of the whole `mlp` connector).
        projector_hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation between the layers of that MLP.
        projector_downsample (`list[int]`, *optional*, defaults to `[2, 2, 2]`):
            (time, height, width) kernel and stride of the connector's sampler.
        num_frames (`int`, *optional*, defaults to 8):
            Frames per clip; images are replicated to this many frames.
        vision_feature_layer (`int`, *optional*, defaults to -2):
            Index into the tower's hidden states used as visual features.
        vision_feature_select_strategy (`str`, *optional*, defaults to `"default"`):
            `"default"` drops the CLS token (CLIP), `"full"` keeps every token (SigLIP has no CLS).
        image_token_id (`int`, *optional*, defaults to 32000):
            Id of the `<image>` placeholder token.
        video_token_id (`int`, *optional*, defaults to 32001):
            Id of the `<video>` placeholder token.
        audio_config (`dict` or `VideoLlama2AudioEncoderConfig`, *optional*):
            BEATs audio encoder of an audio-visual model (VideoLLaMA2.1-AV). `None` (the default) builds no audio
            parts at all.
        audio_projector_depth (`int`, *optional*, defaults to 2):
            Number of linear layers of the MLP from the audio encoder to the LLM. Only read with `audio_config`.
        audio_projector_hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation between the layers of that MLP.
        audio_token_id (`int`, *optional*):
            Id of the `<audio>` placeholder token; required with `audio_config`.
    """

    model_type = "videollama2"
    sub_configs_defaults = {
        "vision_config": SubConfigSpec(
            config_class=AutoConfig,
            model_type="clip_vision_model",
            init_kwargs={
                "hidden_size": 1024,
                "intermediate_size": 4096,
                "num_hidden_layers": 24,
                "num_attention_heads": 16,
                "image_size": 336,
                "patch_size": 14,
                "projection_dim": 768,
                "hidden_act": "quick_gelu",
            },
        ),
        "text_config": SubConfigSpec(config_class=AutoConfig, model_type="mistral"),
        "audio_config": SubConfigSpec(config_class=VideoLlama2AudioEncoderConfig, optional=True),
    }

    vision_config: dict | PreTrainedConfig | None = None
    text_config: dict | PreTrainedConfig | None = None
    projector_type: str = "stc_connector"
    projector_depth: int = 4
    projector_mlp_depth: int = 2
    projector_hidden_act: str = "gelu"
    projector_downsample: list[int] | tuple[int, int, int] = DEFAULT_DOWNSAMPLE
    num_frames: int = DEFAULT_NUM_FRAMES
    vision_feature_layer: int = -2
    vision_feature_select_strategy: Literal["default", "full"] = "default"
    image_token_id: int = 32000
    video_token_id: int = 32001
    audio_config: dict | PreTrainedConfig | None = None
    audio_projector_depth: int = 2
    audio_projector_hidden_act: str = "gelu"
    audio_token_id: int | None = None
    tie_word_embeddings: bool = False

    @classmethod
    def from_dict(cls, config_dict: dict, **kwargs):
        """Refuse another model's config rather than silently replacing it by the defaults (a random 7B model)."""
        if config_dict.get("model_type", cls.model_type) != cls.model_type and "text_config" not in config_dict:
            raise ValueError(
                f"A config of model_type {config_dict['model_type']!r} is not a VideoLlama2Config: it has no "
                "`text_config` and `vision_config` to build a VideoLLaMA2 model from."
            )
        return super().from_dict(config_dict, **kwargs)

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.projector_downsample = list(self.projector_downsample)
        if not self.tie_word_embeddings and self.text_config.tie_word_embeddings:
            self.tie_word_embeddings = self.text_config.tie_word_embeddings

    def validate_architecture(self):
        """Reject what the model cannot build, at config time rather than deep inside `forward`."""
        super().validate_architecture()
        if self.projector_type not in CONNECTORS:
            raise ValueError(
                f"Unsupported projector_type {self.projector_type!r}; VideoLLaMA2 supports {sorted(CONNECTORS)}."
            )
        for name in ("projector_mlp_depth", "audio_projector_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 (a single linear layer), got {getattr(self, name)}.")
        if self.vision_config.model_type not in SUPPORTED_VISION_MODEL_TYPES:
            raise ValueError(
                f"Unsupported vision tower {self.vision_config.model_type!r}; "
                f"VideoLLaMA2 supports {SUPPORTED_VISION_MODEL_TYPES}."
            )
        if self.text_config.model_type not in SUPPORTED_TEXT_MODEL_TYPES:
            raise ValueError(
                f"Unsupported language model {self.text_config.model_type!r}; "
                f"VideoLLaMA2 supports {SUPPORTED_TEXT_MODEL_TYPES}."
            )
        if len(self.projector_downsample) != 3:
            raise ValueError(f"projector_downsample must be (time, height, width), got {self.projector_downsample}.")
        if self.num_frames < 1:
            raise ValueError(f"num_frames must be positive, got {self.num_frames}.")
        if self.vision_feature_select_strategy == "default" and self.vision_config.model_type == "siglip_vision_model":
            raise ValueError(
                "SigLIP has no CLS token to drop: use vision_feature_select_strategy='full' with a SigLIP tower."
            )
        if self.audio_config is not None:
            if self.audio_token_id is None:
                raise ValueError("An audio-visual config needs `audio_token_id`, the id of its <audio> token.")
            if self.audio_token_id in (self.image_token_id, self.video_token_id):
                raise ValueError(
                    f"audio_token_id ({self.audio_token_id}) must differ from the image and video token ids."
                )

    def to_json_file(self, json_file_path: str | os.PathLike, use_diff: bool = True):
        """Also put the code of the pipelines `custom_pipelines` names beside the file, so that a saved folder carries
        the code its config points to (transformers copies only the config's and the model's modules). A pipeline
        whose code is not at hand, as with remote code loaded without it, is dropped from the config instead."""
        pipelines = getattr(self, "custom_pipelines", None) or {}
        carried = {}
        for task, entry in pipelines.items():
            code = Path(__file__).with_name(entry["impl"].split(".")[0] + ".py")
            if not code.is_file():
                logger.warning(f"The code of the {task!r} pipeline is not at hand: the saved config leaves it out.")
                continue
            target = Path(json_file_path).absolute().parent / code.name
            if not target.exists() or not target.samefile(code):
                shutil.copyfile(code, target)
            carried[task] = entry
        if carried != pipelines:
            self.custom_pipelines = carried
        super().to_json_file(json_file_path, use_diff=use_diff)

    @property
    def vision_grid_size(self) -> int:
        """Side of the tower's patch grid (24 for CLIP-336, 27 for SigLIP-384)."""
        return self.vision_config.image_size // self.vision_config.patch_size

    def get_num_visual_tokens(self, num_frames: int | None = None) -> int:
        """Tokens per image or per `num_frames`-frame video (defaults to `self.num_frames`)."""
        return num_visual_tokens(
            self.projector_type,
            self.vision_grid_size,
            self.num_frames if num_frames is None else num_frames,
            self.projector_downsample,
        )


__all__ = ["VideoLlama2AudioEncoderConfig", "VideoLlama2Config"]
