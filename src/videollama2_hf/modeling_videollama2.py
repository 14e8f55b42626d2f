# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""VideoLLaMA2: vision tower -> spatial-temporal connector -> language model, in the LLaVA shape of transformers 5.
VideoLLaMA2.1-AV adds a BEATs audio tower and its projector, whose features fill the `<audio>` positions."""

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache
from transformers.generation import GenerationMixin
from transformers.modeling_outputs import (
    BaseModelOutputWithPooling,
    MultimodalBaseModelOutputWithPast,
    MultimodalCausalLMOutputWithPast,
)
from transformers.modeling_utils import PreTrainedModel, slice_logits_to_keep
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, auto_docstring, logging, torch_compilable_check
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import select_hidden_states

from .configuration_videollama2 import VideoLlama2Config
from .modeling_videollama2_audio import VideoLlama2AudioEncoder
from .token_counts_videollama2 import CONNECTORS, num_visual_tokens


logger = logging.get_logger(__name__)


class VideoLlama2LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (permute, `F.layer_norm`, permute back), as timm's
    `LayerNormAct2d` computes it; the original connector relies on its eps of 1e-5."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states.permute(0, 2, 3, 1)
        hidden_states = F.layer_norm(hidden_states, self.normalized_shape, self.weight, self.bias, self.eps)
        return hidden_states.permute(0, 3, 1, 2)


class VideoLlama2ConvNormAct(nn.Module):
    """Conv2d (no bias) -> channel LayerNorm -> optional SiLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, padding=kernel_size // 2, groups=groups, bias=False
        )
        self.norm = VideoLlama2LayerNorm2d(out_channels, eps=1e-5)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(hidden_states)))


class VideoLlama2SqueezeExcite(nn.Module):
    """Channel gating from the spatial mean; the reduced width comes from the *block input* channels."""

    def __init__(self, channels: int, reduced_channels: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduced_channels, 1)
        self.act = nn.SiLU()
        self.fc2 = nn.Conv2d(reduced_channels, channels, 1)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        gate = hidden_states.mean((2, 3), keepdim=True)
        gate = self.fc2(self.act(self.fc1(gate)))
        return hidden_states * gate.sigmoid()


class VideoLlama2Bottleneck(nn.Module):
    """RegNet bottleneck (width = out channels, depthwise 3x3, squeeze-excite 0.25) with a residual.

    1x1 convolutions are kept as convolutions (not Linear) so the kernels, hence the bits, match the original.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = VideoLlama2ConvNormAct(in_channels, out_channels, 1)
        self.conv2 = VideoLlama2ConvNormAct(out_channels, out_channels, 3, groups=out_channels)
        self.se = VideoLlama2SqueezeExcite(out_channels, int(round(in_channels * 0.25)))
        self.conv3 = VideoLlama2ConvNormAct(out_channels, out_channels, 1, act=False)
        self.downsample = (
            VideoLlama2ConvNormAct(in_channels, out_channels, 1, act=False)
            if in_channels != out_channels
            else nn.Identity()
        )
        self.act = nn.SiLU()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = self.downsample(hidden_states)
        hidden_states = self.conv3(self.se(self.conv2(self.conv1(hidden_states))))
        return self.act(hidden_states + residual)


class VideoLlama2RegStage(nn.Module):
    """`depth` bottlenecks named b1..bN, the names of the released checkpoints."""

    def __init__(self, depth: int, in_channels: int, out_channels: int):
        super().__init__()
        self.depth = depth
        for index in range(depth):
            self.add_module(
                f"b{index + 1}", VideoLlama2Bottleneck(in_channels if index == 0 else out_channels, out_channels)
            )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for index in range(self.depth):
            hidden_states = getattr(self, f"b{index + 1}")(hidden_states)
        return hidden_states


class VideoLlama2ProjectorMLP(nn.Module):
    """Linear, then (depth - 1) x [activation, Linear]."""

    def __init__(self, in_features: int, out_features: int, depth: int, hidden_act: str = "gelu"):
        super().__init__()
        self.depth = depth
        self.linear_1 = nn.Linear(in_features, out_features)
        for index in range(2, depth + 1):
            self.add_module(f"linear_{index}", nn.Linear(out_features, out_features))
        self.act = ACT2FN[hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.linear_1(hidden_states)
        for index in range(2, self.depth + 1):
            hidden_states = getattr(self, f"linear_{index}")(self.act(hidden_states))
        return hidden_states


def rearranged(
    tensor: torch.Tensor,
    shape: tuple[int, ...],
    permutation: tuple[int, ...],
    final_shape: tuple[int, ...] | None = None,
) -> torch.Tensor:
    """einops' `rearrange` as it runs on torch: reshape, permute, then reshape to the final shape (the permuted shape
    when none is given), each a view where torch can make one."""
    permuted = tensor.reshape(shape).permute(permutation)
    return permuted.reshape(final_shape if final_shape is not None else permuted.shape)


class VideoLlama2MultiModalProjector(nn.Module):
    """Maps per-frame patch features (batch, frames, patches, vision_hidden) to LLM tokens (batch, tokens, hidden).

    STC/STP connectors: RegStage per frame -> 3D sampler over (time, height, width) -> RegStage -> MLP readout,
    tokens ordered time-major, then row, then column. The `mlp` connector: mean over frames, then the MLP.
    """

    def __init__(self, config: VideoLlama2Config):
        super().__init__()
        vision_hidden = config.vision_config.hidden_size
        text_hidden = config.text_config.hidden_size
        self.projector_type = config.projector_type
        self.connector = CONNECTORS[config.projector_type]
        self.grid_size = config.vision_grid_size
        self.downsample = tuple(config.projector_downsample)
        mlp = (config.projector_mlp_depth, config.projector_hidden_act)
        if self.connector.sampler is None:
            self.readout = VideoLlama2ProjectorMLP(vision_hidden, text_hidden, *mlp)
            return
        downsample = self.downsample
        self.s1 = VideoLlama2RegStage(config.projector_depth, vision_hidden, text_hidden)
        if self.connector.sampler == "avg_pool":
            self.sampler = nn.AvgPool3d(downsample, padding=self.connector.padding)
        else:
            self.sampler = nn.Conv3d(
                text_hidden, text_hidden, downsample, stride=downsample, padding=self.connector.padding
            )
        self.sampler_act = nn.SiLU()
        self.s2 = VideoLlama2RegStage(config.projector_depth, text_hidden, text_hidden)
        self.readout = VideoLlama2ProjectorMLP(text_hidden, text_hidden, *mlp)

    def forward(self, frame_features: torch.Tensor) -> torch.Tensor:
        if self.connector.sampler is None:
            return self.readout(frame_features.mean(1))
        batch_size, num_frames, num_patches, channels = frame_features.shape
        grid = self.grid_size
        if num_patches != grid * grid:
            raise ValueError(
                f"The connector expects {grid}x{grid}={grid * grid} patch features per frame, got {num_patches}. "
                "Check `vision_feature_select_strategy` ('default' drops CLIP's CLS token)."
            )
        num_visual_tokens(self.projector_type, grid, num_frames, self.downsample)  # clear error for too few frames
        # Each rearrangement takes the original's three einops steps (reshape, permute, reshape), so that every
        # convolution gets the memory layout the original gives it, down to the strides of size-1 dimensions (the
        # final reshape recomputes those): kernels pick their algorithm, hence their bf16 rounding, by layout, so other
        # views of the same values change the bf16 output at the releases' widths (measured from 512 channels up).
        hidden_states = rearranged(  # (b, t, h*w, d) -> (b*t, d, h, w)
            frame_features, (batch_size * num_frames, grid, grid, channels), (0, 3, 1, 2)
        )
        hidden_states = self.s1(hidden_states)
        hidden = hidden_states.shape[1]
        hidden_states = rearranged(  # (b*t, d, h, w) -> (b, d, t, h, w), sampled over time and space
            hidden_states, (batch_size, num_frames, hidden, grid, grid), (0, 2, 1, 3, 4)
        )
        hidden_states = self.sampler_act(self.sampler(hidden_states))
        _, _, new_frames, height, width = hidden_states.shape
        hidden_states = rearranged(  # (b, d, t', h', w') -> (b*t', d, h', w')
            hidden_states, hidden_states.shape, (0, 2, 1, 3, 4), (batch_size * new_frames, hidden, height, width)
        )
        hidden_states = self.s2(hidden_states)
        hidden_states = rearranged(  # (b*t', d, h', w') -> (b, t'*h'*w', d)
            hidden_states,
            (batch_size, new_frames, hidden, height, width),
            (0, 1, 3, 4, 2),
            (batch_size, new_frames * height * width, hidden),
        )
        return self.readout(hidden_states)


def holds_any_token(input_ids: torch.LongTensor, token_ids: list[int]) -> torch.BoolTensor:
    """Positions holding any of `token_ids`, by scalar comparisons: no id list is copied to the device at each step."""
    mask = torch.zeros_like(input_ids, dtype=torch.bool)
    for token_id in token_ids:
        mask |= input_ids == token_id
    return mask


class VideoLlama2PreTrainedModel(PreTrainedModel):
    config: VideoLlama2Config
    base_model_prefix = "model"
    input_modalities = ("image", "video", "audio", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["VideoLlama2MultiModalProjector"]
    _skip_keys_device_placement = ["past_key_values", "cache"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _can_compile_fullgraph = True  # decode steps are text-only: generate compiles those, never the prefill
    _supports_attention_backend = True

    def initialize_weights(self):
        """Initialise the vision tower and the language model as their own classes do, then the rest.

        transformers treats the whole tree of an out-of-library model as custom code and then skips the towers' init
        of modules without direct parameters (CLIP/SigLIP attention and MLP scale their projections there), leaving
        those weights at the generic 0.02 init. Each tower initialised as a top-level model gets its own scheme; its
        modules are then marked initialised, so the pass below only reaches the connector (and never touches loaded
        weights, which `from_pretrained` marks as well).
        """
        for module in self.modules():
            if isinstance(module, PreTrainedModel) and not isinstance(module, VideoLlama2PreTrainedModel):
                module.initialize_weights()
        super().initialize_weights()


class VideoLlama2Model(VideoLlama2PreTrainedModel):
    """Vision tower, connector and language model without the LM head; with `config.audio_config`, also the audio
    tower and its projector.

    `forward` follows Llava's (`LlavaModel.forward`: features scattered into the placeholder positions, then the
    language model), extended to three modalities and `mm_encoder_outputs`; not inherited, as Llava's signature and
    placeholder handling are for one image modality."""

    def __init__(self, config: VideoLlama2Config):
        super().__init__(config)
        self.vision_tower = AutoModel.from_config(config.vision_config)
        self.multi_modal_projector = VideoLlama2MultiModalProjector(config)
        if config.audio_config is not None:
            self.audio_tower = VideoLlama2AudioEncoder(config.audio_config)
            self.audio_projector = VideoLlama2ProjectorMLP(
                config.audio_config.hidden_size,
                config.text_config.hidden_size,
                config.audio_projector_depth,
                config.audio_projector_hidden_act,
            )
        self.language_model = AutoModel.from_config(config.text_config)
        self.post_init()

    @property
    def modalities(self) -> tuple[tuple[str, int | None, str], ...]:
        """(modality, placeholder token id, raw input name) of every medium this model reads."""
        media = (("image", self.config.image_token_id, "pixel_values"),)
        media += (("video", self.config.video_token_id, "pixel_values_videos"),)
        if self.config.audio_config is not None:
            media += (("audio", self.config.audio_token_id, "input_features"),)
        return media

    def _check_frames(self, pixel_values: torch.Tensor, leading_dims: int, name: str) -> None:
        size = self.config.vision_config.image_size
        layout = "(num_videos, frames, 3, H, W)" if leading_dims == 2 else "(num_images, 3, H, W)"
        if pixel_values.ndim != leading_dims + 3 or tuple(pixel_values.shape[-3:]) != (3, size, size):
            raise ValueError(
                f"`{name}` must have shape {layout} with H = W = {size} for this vision tower, got "
                f"{tuple(pixel_values.shape)}. Preprocess media with the model's processor."
            )

    def _patch_features(
        self,
        frames: torch.Tensor,
        vision_feature_layer: int,
        vision_feature_select_strategy: str,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[BaseModelOutputWithPooling, torch.Tensor]:
        """Tower on (N, 3, S, S) frames -> selected hidden state, CLS dropped for the "default" strategy."""
        vision_outputs = self.vision_tower(frames.to(self.vision_tower.dtype), return_dict=True, **kwargs)
        patch_features = vision_outputs.hidden_states[vision_feature_layer]
        if vision_feature_select_strategy == "default":
            patch_features = patch_features[:, 1:]
        return vision_outputs, patch_features

    @merge_with_config_defaults
    @can_return_tuple
    @select_hidden_states("vision_feature_layer")
    def get_video_features(
        self,
        pixel_values_videos: torch.Tensor,
        vision_feature_layer: int | None = None,
        vision_feature_select_strategy: str | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | BaseModelOutputWithPooling:
        """Encode videos (num_videos, frames, 3, S, S); `pooler_output` is (num_videos, tokens, hidden)."""
        self._check_frames(pixel_values_videos, 2, "pixel_values_videos")
        num_videos, num_frames = pixel_values_videos.shape[:2]
        vision_outputs, patch_features = self._patch_features(
            pixel_values_videos.flatten(0, 1), vision_feature_layer, vision_feature_select_strategy, **kwargs
        )
        vision_outputs.pooler_output = self.multi_modal_projector(
            patch_features.unflatten(0, (num_videos, num_frames))
        )
        return vision_outputs

    @merge_with_config_defaults
    @can_return_tuple
    @select_hidden_states("vision_feature_layer")
    def get_image_features(
        self,
        pixel_values: torch.Tensor,
        vision_feature_layer: int | None = None,
        vision_feature_select_strategy: str | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | BaseModelOutputWithPooling:
        """Encode images (num_images, 3, S, S) as clips of `config.num_frames` identical frames, as the original
        does, so an image costs as many tokens as a video. The tower's output is the same for every copy, so it
        runs once per image and only the connector sees the `num_frames` copies."""
        self._check_frames(pixel_values, 1, "pixel_values")
        vision_outputs, patch_features = self._patch_features(
            pixel_values, vision_feature_layer, vision_feature_select_strategy, **kwargs
        )
        frame_features = patch_features.unsqueeze(1).expand(-1, self.config.num_frames, -1, -1)
        vision_outputs.pooler_output = self.multi_modal_projector(frame_features)
        return vision_outputs

    @can_return_tuple
    def get_audio_features(
        self, input_features: torch.Tensor, **kwargs: Unpack[TransformersKwargs]
    ) -> tuple | BaseModelOutputWithPooling:
        """Encode audio clips: (num_clips, frames, mel bins) filterbanks (`VideoLlama2FeatureExtractor`) -> BEATs ->
        projector; `pooler_output` is (num_clips, tokens, hidden), one token per 16 x 16 patch."""
        if self.config.audio_config is None:
            raise ValueError(
                "This model has no audio tower (its config has no `audio_config`): only audio-visual checkpoints "
                "such as VideoLLaMA2.1-7B-AV hear audio. Ask about the video or image alone."
            )
        audio_outputs = self.audio_tower(input_features.to(self.audio_tower.dtype), return_dict=True, **kwargs)
        return BaseModelOutputWithPooling(
            last_hidden_state=audio_outputs.last_hidden_state,
            pooler_output=self.audio_projector(audio_outputs.last_hidden_state),
            hidden_states=audio_outputs.hidden_states,
            attentions=audio_outputs.attentions,
        )

    def _embed_ids(self, input_ids: torch.LongTensor) -> torch.Tensor:
        """Token embeddings; placeholder ids past the embedding table (the released Mistral checkpoints have no
        spare rows for `<image>`/`<video>`) are embedded as id 0, a row their features replace."""
        embeddings = self.get_input_embeddings()
        outside = [token_id for _, token_id, _ in self.modalities if token_id >= embeddings.num_embeddings]
        if outside:
            input_ids = input_ids.masked_fill(holds_any_token(input_ids, outside), 0)
        return embeddings(input_ids)

    def get_placeholder_mask(
        self,
        input_ids: torch.LongTensor | None,
        inputs_embeds: torch.Tensor,
        token_id: int,
        features: torch.Tensor,
        modality: str,
    ) -> torch.BoolTensor:
        """Positions of `modality` placeholders, found by id, or without ids (transformers' convention) as the
        positions whose embedding is the placeholder token's. Their count must equal the number of feature rows."""
        if input_ids is not None:
            mask = input_ids == token_id
        else:
            embeddings = self.get_input_embeddings()
            if token_id >= embeddings.num_embeddings:
                raise ValueError(
                    f"`inputs_embeds` cannot mark <{modality}> positions for this checkpoint: its <{modality}> id "
                    f"{token_id} lies outside the embedding table ({embeddings.num_embeddings} rows). Pass "
                    "`input_ids` instead."
                )
            placeholder_id = torch.full((), token_id, dtype=torch.long, device=inputs_embeds.device)
            placeholder = embeddings(placeholder_id).to(inputs_embeds.dtype)
            mask = (inputs_embeds == placeholder).all(-1)
        num_tokens = mask.sum()  # a tensor: checked without a host sync, so that compiled graphs do not break
        torch_compilable_check(
            num_tokens == features.shape[0],
            lambda: (
                f"{modality.capitalize()} features and {modality} tokens do not match: the prompt holds "
                f"{int(num_tokens)} <{modality}> tokens but the {modality} inputs give {features.shape[0]} features. "
                f"Write exactly one <{modality}> per {modality} and let the processor expand it (check truncation and "
                "`num_frames`)."
            ),
        )
        return mask

    @can_return_tuple
    @auto_docstring
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        vision_feature_layer: int | None = None,
        vision_feature_select_strategy: str | None = None,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        input_features: torch.FloatTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | MultimodalBaseModelOutputWithPast:
        r"""
        input_features (`torch.FloatTensor` of shape `(num_clips, frames, mel_bins)`, *optional*):
            Filterbanks of the audio clips ([`VideoLlama2FeatureExtractor`]), for the `<audio>` positions of an
            audio-visual model, in the order the prompts hold them.
        """
        if (input_ids is None) ^ (inputs_embeds is not None):
            raise ValueError("You must specify exactly one of input_ids or inputs_embeds")
        raw_inputs = {"image": pixel_values, "video": pixel_values_videos, "audio": input_features}
        for modality, raw_input in raw_inputs.items():
            if raw_input is not None and (mm_encoder_outputs or {}).get(modality) is not None:
                raise ValueError(f"You cannot pass both raw {modality} inputs and `mm_encoder_outputs['{modality}']`.")

        if inputs_embeds is None:
            inputs_embeds = self._embed_ids(input_ids)

        mm_encoder_outputs = dict(mm_encoder_outputs) if mm_encoder_outputs is not None else {}
        if pixel_values is not None:
            mm_encoder_outputs["image"] = self.get_image_features(
                pixel_values=pixel_values,
                vision_feature_layer=vision_feature_layer,
                vision_feature_select_strategy=vision_feature_select_strategy,
                return_dict=True,
            )
        if pixel_values_videos is not None:
            mm_encoder_outputs["video"] = self.get_video_features(
                pixel_values_videos=pixel_values_videos,
                vision_feature_layer=vision_feature_layer,
                vision_feature_select_strategy=vision_feature_select_strategy,
                return_dict=True,
            )
        if input_features is not None:
            mm_encoder_outputs["audio"] = self.get_audio_features(input_features, return_dict=True)
        # Without features, placeholder ids are ordinary tokens, as in transformers' own VLMs: assisted decoding and
        # text-only checks run such steps. A prompt whose media were forgotten is caught by `generate` at prefill.
        # An audio-visual clip's [video ; audio] layout is the prompt's: the processor writes the video's run, then
        # its audio's.
        for modality, token_id, _ in self.modalities:
            if mm_encoder_outputs.get(modality) is None:
                continue
            features = torch.cat(list(mm_encoder_outputs[modality].pooler_output), dim=0)
            features = features.to(inputs_embeds.device, inputs_embeds.dtype)
            mask = self.get_placeholder_mask(input_ids, inputs_embeds, token_id, features, modality)
            inputs_embeds = inputs_embeds.masked_scatter(mask.unsqueeze(-1).to(inputs_embeds.device), features)

        outputs = self.language_model(
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            **kwargs,
        )
        return MultimodalBaseModelOutputWithPast(
            **outputs,
            image_outputs=mm_encoder_outputs.get("image"),
            video_outputs=mm_encoder_outputs.get("video"),
            audio_outputs=mm_encoder_outputs.get("audio"),
        )


class VideoLlama2ForConditionalGeneration(VideoLlama2PreTrainedModel, GenerationMixin):
    """VideoLLaMA2 with its language-modelling head: answers questions about images and videos (and, for an
    audio-visual model, audio and the sound of videos)."""

    _tied_weights_keys = {"lm_head.weight": "model.language_model.embed_tokens.weight"}
    _tp_plan = {"lm_head": "colwise_gather_output"}

    def __init__(self, config: VideoLlama2Config):
        super().__init__(config)
        self.model = VideoLlama2Model(config)
        self.lm_head = nn.Linear(config.text_config.hidden_size, config.text_config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def get_image_features(self, pixel_values: torch.FloatTensor, **kwargs: Unpack[TransformersKwargs]):
        return self.model.get_image_features(pixel_values=pixel_values, **kwargs)

    def get_video_features(self, pixel_values_videos: torch.FloatTensor, **kwargs: Unpack[TransformersKwargs]):
        return self.model.get_video_features(pixel_values_videos=pixel_values_videos, **kwargs)

    def get_audio_features(self, input_features: torch.FloatTensor, **kwargs: Unpack[TransformersKwargs]):
        return self.model.get_audio_features(input_features=input_features, **kwargs)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        next_sequence_length: int | None = None,
        cache: Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        is_first_iteration: bool | None = False,
        **kwargs,
    ):
        """transformers' preparation, plus one check at the first step: a prompt whose `<image>`/`<video>`/`<audio>`
        runs come without their media is a user error here (in `forward`, such ids are ordinary tokens). The
        signature is spelled out because `generate` reads it (e.g. for `inputs_embeds` support)."""
        model_inputs = super().prepare_inputs_for_generation(
            input_ids,
            next_sequence_length=next_sequence_length,
            cache=cache,
            attention_mask=attention_mask,
            inputs_embeds=inputs_embeds,
            is_first_iteration=is_first_iteration,
            **kwargs,
        )
        step_ids = model_inputs.get("input_ids")
        if is_first_iteration and step_ids is not None:
            encoded = model_inputs.get("mm_encoder_outputs") or {}
            for modality, token_id, raw_input in self.model.modalities:
                has_media = model_inputs.get(raw_input) is not None or encoded.get(modality) is not None
                if not has_media and (step_ids == token_id).any():
                    raise ValueError(
                        f"The prompt holds <{modality}> tokens but no `{raw_input}` were given to `generate`: pass "
                        f"the processor's whole output (`model.generate(**inputs)`)."
                    )
        return model_inputs

    @can_return_tuple
    @auto_docstring
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        pixel_values_videos: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        vision_feature_layer: int | None = None,
        vision_feature_select_strategy: str | None = None,
        labels: torch.LongTensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        mm_encoder_outputs: dict[str, BaseModelOutputWithPooling] | None = None,
        input_features: torch.FloatTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple | MultimodalCausalLMOutputWithPast:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*):
            Next-token targets; -100 is ignored. Positions of `<image>`/`<video>`/`<audio>` tokens never count in the
            loss (as in the original), whatever `labels` holds there.
        input_features (`torch.FloatTensor` of shape `(num_clips, frames, mel_bins)`, *optional*):
            Filterbanks of the audio clips ([`VideoLlama2FeatureExtractor`]), for the `<audio>` positions of an
            audio-visual model.
        """
        outputs = self.model(
            input_ids=input_ids,
            pixel_values=pixel_values,
            pixel_values_videos=pixel_values_videos,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            vision_feature_layer=vision_feature_layer,
            vision_feature_select_strategy=vision_feature_select_strategy,
            mm_encoder_outputs=mm_encoder_outputs,
            input_features=input_features,
            **kwargs,
        )
        hidden_states = slice_logits_to_keep(outputs.last_hidden_state, logits_to_keep)
        logits = self.lm_head(hidden_states)

        loss = None
        if labels is not None:
            if input_ids is not None:
                is_placeholder = holds_any_token(input_ids, [token_id for _, token_id, _ in self.model.modalities])
                labels = labels.masked_fill(is_placeholder.to(labels.device), -100)
            loss = self.loss_function(
                logits=logits, labels=labels, vocab_size=self.config.text_config.vocab_size, **kwargs
            )

        return MultimodalCausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            image_outputs=outputs.image_outputs,
            video_outputs=outputs.video_outputs,
            audio_outputs=outputs.audio_outputs,
        )


__all__ = ["VideoLlama2ForConditionalGeneration", "VideoLlama2Model", "VideoLlama2PreTrainedModel"]
