# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""The BEATs audio encoder of VideoLLaMA2.1-AV, native to transformers (no fairseq, no torchaudio).

BEATs turns a (frames x 128) log-mel filterbank into one token per 16 x 16 patch: a patch-embedding convolution,
a weight-normalised convolutional position embedding, then post-LN "deep norm" transformer layers whose attention
adds a relative-position bias that all layers share and that each layer gates per head and query.

Parameter names follow the original BEATs module, so that a release's `model.audio_tower.*` tensors load after a
prefix rename, but for three: `encoder.pos_conv.0.*` loses its `0.`, the relative-position table, which the original
aliases into every layer, lives once on the encoder, and the attention gate takes the names transformers' WavLM gives
the same gate (the release's key table: `original_layout`). The weight norm of
the positional convolution is a torch parametrization, as in transformers' own audio encoders: its `weight_g` and
`weight_v` tensors are `parametrizations.weight.original0` / `original1`, the names transformers' loading gives
those legacy names.
"""

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils import parametrize
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.models.siglip.modeling_siglip import eager_attention_forward  # the standard eager attention
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, auto_docstring
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import capture_outputs

from .configuration_videollama2 import VideoLlama2AudioEncoderConfig


# The original normalises each kernel tap of the positional convolution with this epsilon (torch's weight_norm
# has none), in float32.
WEIGHT_NORM_EPS = 1e-6


def relative_position_bucket(relative_positions: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """T5-style bidirectional buckets: half of the buckets per direction, exact below a quarter of them, then
    log-spaced up to `max_distance`. Computed in float32 with the original's order of operations, so that the
    truncation to integers lands on the same bucket. WavLM's `_relative_positions_bucket` is the same scheme but adds
    `max_exact` before truncating, which can land one bucket higher where that float sum rounds up to an integer:
    hence not inherited from it."""
    half = num_buckets // 2
    max_exact = half // 2
    buckets = (relative_positions > 0).long() * half
    distance = relative_positions.abs()
    log_ratio = torch.log(distance.clamp(min=1).float() / max_exact) / math.log(max_distance / max_exact)
    far = (max_exact + (log_ratio * (half - max_exact)).long()).clamp(max=half - 1)
    return buckets + torch.where(distance < max_exact, distance, far)


class VideoLlama2AudioWeightNorm(nn.Module):
    """BEATs' weight norm, per kernel tap: `weight = g * v / sqrt(sum(v[:, :, k] ** 2) + 1e-6)`, normalised in
    float32. torch's `weight_norm` has no epsilon, so its weights would differ in the last bits."""

    def forward(self, weight_g: torch.Tensor, weight_v: torch.Tensor) -> torch.Tensor:
        v = weight_v.float()
        v = v * torch.rsqrt(v.pow(2).sum(dim=(0, 1), keepdim=True) + WEIGHT_NORM_EPS)
        return weight_g * v.to(weight_v.dtype)

    def right_inverse(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(g, v) of a plain weight: its per-tap norms and itself (up to the epsilon)."""
        return weight.norm(dim=(0, 1), keepdim=True), weight


class VideoLlama2AudioPositionalConvEmbedding(nn.Conv1d):
    """Grouped 1-D convolution over time with BEATs' weight norm, followed by GELU. The even kernel with
    `padding = kernel // 2` yields one extra step, dropped at the end."""

    def __init__(self, config: VideoLlama2AudioEncoderConfig):
        kernel = config.num_conv_pos_embeddings
        super().__init__(
            config.hidden_size,
            config.hidden_size,
            kernel,
            padding=kernel // 2,
            groups=config.num_conv_pos_embedding_groups,
        )
        parametrize.register_parametrization(self, "weight", VideoLlama2AudioWeightNorm())
        self.activation = ACT2FN[config.hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        length = hidden_states.shape[1]
        hidden_states = super().forward(hidden_states.transpose(1, 2))
        return self.activation(hidden_states[..., :length]).transpose(1, 2)


class VideoLlama2AudioAttention(nn.Module):
    """Self-attention plus the shared relative-position bias, scaled per (head, query) by a gate computed from the
    unscaled query: `gate = a * (b * gru_rel_pos_const[h] - 1) + 2` with `(a, b)` two sigmoids of
    `gru_rel_pos_linear(q)`. The gated bias is an additive float mask, so every attention backend that takes one
    (eager, sdpa) computes the same thing.

    The gate is WavLM's (`WavLMAttention`, whose parameter names these are; the original calls them `grep_linear` and
    `grep_a`), but computed from the projected query rather than from the hidden states, so it is not inherited."""

    def __init__(self, config: VideoLlama2AudioEncoderConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        self.is_causal = False
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.k_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.v_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.gru_rel_pos_linear = nn.Linear(self.head_dim, 8)
        self.gru_rel_pos_const = nn.Parameter(torch.ones(1, self.num_heads, 1, 1))

    def forward(
        self, hidden_states: torch.Tensor, position_bias: torch.Tensor, **kwargs: Unpack[TransformersKwargs]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch_size, length, _ = hidden_states.shape
        head_shape = (batch_size, length, self.num_heads, self.head_dim)
        query = self.q_proj(hidden_states).view(head_shape).transpose(1, 2)
        key = self.k_proj(hidden_states).view(head_shape).transpose(1, 2)
        value = self.v_proj(hidden_states).view(head_shape).transpose(1, 2)

        gates = torch.sigmoid(self.gru_rel_pos_linear(query).view(batch_size, self.num_heads, length, 2, 4).sum(-1))
        gate_a, gate_b = gates.chunk(2, dim=-1)  # both (batch, heads, queries, 1)
        gated_bias = (gate_a * (gate_b * self.gru_rel_pos_const - 1.0) + 2.0) * position_bias

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            gated_bias.to(query.dtype),
            is_causal=False,
            scaling=self.scaling,
            dropout=self.dropout if self.training else 0.0,
            **kwargs,
        )
        attn_output = self.out_proj(attn_output.reshape(batch_size, length, -1))
        return attn_output, attn_weights


class VideoLlama2AudioEncoderLayer(GradientCheckpointingLayer):
    """Post-LN layer with deep-norm residual scaling: `x = LN(alpha * x + f(x))`, `alpha = (2 * layers) ** 0.25`."""

    def __init__(self, config: VideoLlama2AudioEncoderConfig):
        super().__init__()
        self.self_attn = VideoLlama2AudioAttention(config)
        self.self_attn_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.final_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.activation = ACT2FN[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.activation_dropout = nn.Dropout(config.activation_dropout)
        self.deep_norm_alpha = math.pow(2 * config.num_hidden_layers, 1 / 4)

    def forward(
        self, hidden_states: torch.Tensor, position_bias: torch.Tensor, **kwargs: Unpack[TransformersKwargs]
    ) -> torch.Tensor:
        attn_output, _ = self.self_attn(hidden_states, position_bias, **kwargs)
        hidden_states = self.self_attn_layer_norm(hidden_states * self.deep_norm_alpha + self.dropout(attn_output))
        feed_forward = self.fc2(self.activation_dropout(self.activation(self.fc1(hidden_states))))
        return self.final_layer_norm(hidden_states * self.deep_norm_alpha + self.dropout(feed_forward))


class VideoLlama2AudioTransformer(nn.Module):
    """Positional convolution, LayerNorm (applied before the layers: BEATs is post-LN), then the layers, which all
    share one relative-position bias table."""

    def __init__(self, config: VideoLlama2AudioEncoderConfig):
        super().__init__()
        self.config = config
        self.pos_conv = VideoLlama2AudioPositionalConvEmbedding(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.relative_attention_bias = nn.Embedding(config.num_buckets, config.num_attention_heads)
        self.layers = nn.ModuleList([VideoLlama2AudioEncoderLayer(config) for _ in range(config.num_hidden_layers)])
        self.dropout = nn.Dropout(config.hidden_dropout)

    def position_bias(self, length: int) -> torch.Tensor:
        """(1, heads, length, length) bias of key position j for query position i, from the bucket of j - i."""
        positions = torch.arange(length, device=self.relative_attention_bias.weight.device)
        buckets = relative_position_bucket(
            positions[None, :] - positions[:, None], self.config.num_buckets, self.config.max_distance
        )
        return self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)

    def forward(self, hidden_states: torch.Tensor, **kwargs: Unpack[TransformersKwargs]) -> BaseModelOutput:
        hidden_states = self.layer_norm(hidden_states + self.pos_conv(hidden_states))
        hidden_states = self.dropout(hidden_states)
        position_bias = self.position_bias(hidden_states.shape[1])
        for layer in self.layers:
            if self.training and torch.rand([]) < self.config.layerdrop:
                continue
            hidden_states = layer(hidden_states, position_bias, **kwargs)
        return BaseModelOutput(last_hidden_state=hidden_states)


class VideoLlama2AudioEncoderPreTrainedModel(PreTrainedModel):
    config: VideoLlama2AudioEncoderConfig
    base_model_prefix = "audio_tower"
    main_input_name = "input_features"
    input_modalities = ("audio",)
    _input_embed_layer = "patch_embedding"
    supports_gradient_checkpointing = True
    _no_split_modules = ["VideoLlama2AudioEncoderLayer"]
    _supports_sdpa = True
    _supports_flash_attn = False  # the gated relative-position bias is a float mask, which flash attention lacks
    _supports_attention_backend = True
    # What BEATs checkpoints hold besides the encoder: the AudioSet classifier of the fine-tuned BEATs, and, in
    # fairseq's layout, the relative-position table every layer aliases (kept once here, from layer 0).
    _keys_to_ignore_on_load_unexpected = [
        r"predictor\.",
        r"encoder\.layers\.[1-9]\d*\.self_attn\.relative_attention_bias\.",
    ]
    _can_record_outputs = {
        "hidden_states": VideoLlama2AudioEncoderLayer,
        "attentions": VideoLlama2AudioAttention,
    }

    def _init_weights(self, module):
        """BEATs' initialisation: deep-norm-scaled Xavier projections, a Xavier-normal bias table, and a position
        convolution whose gain `g` starts as the norm of each kernel tap of `v`."""
        super()._init_weights(module)
        config = self.config
        if isinstance(module, VideoLlama2AudioPositionalConvEmbedding):
            std = math.sqrt(4 / (config.num_conv_pos_embeddings * config.hidden_size))
            weight_g, weight_v = module.parametrizations.weight.original0, module.parametrizations.weight.original1
            init.normal_(weight_v, mean=0.0, std=std)
            init.copy_(weight_g, weight_v.detach().norm(dim=(0, 1), keepdim=True))
            init.zeros_(module.bias)
        elif isinstance(module, VideoLlama2AudioAttention):
            beta = math.pow(8 * config.num_hidden_layers, -1 / 4)
            for projection, gain in ((module.q_proj, 1.0), (module.k_proj, 1.0), (module.v_proj, beta)):
                init.xavier_normal_(projection.weight, gain=gain)
                init.zeros_(projection.bias)
            init.xavier_normal_(module.out_proj.weight, gain=beta)
            init.zeros_(module.out_proj.bias)
            init.ones_(module.gru_rel_pos_const)
        elif isinstance(module, VideoLlama2AudioEncoderLayer):
            beta = math.pow(8 * config.num_hidden_layers, -1 / 4)
            init.xavier_normal_(module.fc1.weight, gain=beta)
            init.xavier_normal_(module.fc2.weight, gain=beta)
            init.zeros_(module.fc1.bias)
            init.zeros_(module.fc2.bias)
        elif isinstance(module, VideoLlama2AudioTransformer):
            init.xavier_normal_(module.relative_attention_bias.weight)


class VideoLlama2AudioEncoder(VideoLlama2AudioEncoderPreTrainedModel):
    """BEATs: (batch, frames, mel bins) filterbank -> (batch, tokens, hidden_size), one token per 16 x 16 patch in
    time-major order (token = t * mel_patches + f)."""

    def __init__(self, config: VideoLlama2AudioEncoderConfig):
        super().__init__(config)
        self.patch_embedding = nn.Conv2d(
            1,
            config.patch_embedding_dim,
            kernel_size=config.patch_size,
            stride=config.patch_size,
            bias=config.patch_embedding_bias,
        )
        self.layer_norm = nn.LayerNorm(config.patch_embedding_dim, eps=config.layer_norm_eps)
        self.post_extract_proj = nn.Linear(config.patch_embedding_dim, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.encoder = VideoLlama2AudioTransformer(config)
        self.post_init()

    def embed_patches(self, input_features: torch.Tensor) -> torch.Tensor:
        """Normalised filterbank -> patch tokens projected to `hidden_size` (the input of the position conv)."""
        if input_features.ndim != 3 or input_features.shape[-1] != self.config.num_mel_bins:
            raise ValueError(
                f"input_features must be (batch, frames, {self.config.num_mel_bins}) filterbanks, got shape "
                f"{tuple(input_features.shape)}. Compute them with VideoLlama2FeatureExtractor."
            )
        if input_features.shape[1] < self.config.patch_size:
            raise ValueError(
                f"input_features have {input_features.shape[1]} frames, fewer than one {self.config.patch_size}-frame "
                "patch; pad the audio (the feature extractor pads to 30 s)."
            )
        features = input_features.to(self.patch_embedding.weight.dtype)
        features = (features - self.config.fbank_mean) / (2 * self.config.fbank_std)
        patches = self.patch_embedding(features.unsqueeze(1))  # (batch, width, time patches, mel patches)
        patches = self.layer_norm(patches.flatten(2).transpose(1, 2))
        return self.dropout(self.post_extract_proj(patches))

    @merge_with_config_defaults
    @capture_outputs
    @auto_docstring
    def forward(self, input_features: torch.Tensor, **kwargs: Unpack[TransformersKwargs]) -> BaseModelOutput:
        r"""
        input_features (`torch.FloatTensor` of shape `(batch_size, num_frames, num_mel_bins)`):
            Kaldi-compatible log-mel filterbanks, as computed by [`VideoLlama2FeatureExtractor`] (not normalised:
            the encoder subtracts `fbank_mean` and divides by `2 * fbank_std` itself).
        """
        return self.encoder(self.embed_patches(input_features), **kwargs)


__all__ = [
    "VideoLlama2AudioEncoder",
    "VideoLlama2AudioEncoderPreTrainedModel",
]
