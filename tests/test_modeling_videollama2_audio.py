# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""VideoLlama2AudioEncoder (BEATs) against the original's outputs in the AV fixture, loaded from the fixture's
original-layout checkpoint shards by key prefix, plus the transformers conventions (hidden states, attentions,
return_dict, attention backends, save/load, initialisation, user errors).
"""

import json
import math

import numpy as np
import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel
from transformers.conversion_mapping import get_checkpoint_conversion_mapping
from transformers.core_model_loading import apply_renamings
from videollama2_test_utils import AV_VARIANT, TINY_AUDIO_CONFIG

from videollama2_hf import VideoLlama2AudioEncoder, VideoLlama2AudioEncoderConfig
from videollama2_hf.modeling_videollama2_audio import relative_position_bucket
from videollama2_hf.original_layout import convert_original_key


TOWER_PREFIX = "model.audio_tower."
# BEATsConfig field -> VideoLlama2AudioEncoderConfig field, for the fields the fixture sets or the model reads.
BEATS_CONFIG_FIELDS = {
    "embed_dim": "patch_embedding_dim",
    "encoder_embed_dim": "hidden_size",
    "encoder_ffn_embed_dim": "intermediate_size",
    "encoder_layers": "num_hidden_layers",
    "encoder_attention_heads": "num_attention_heads",
    "input_patch_size": "patch_size",
    "conv_bias": "patch_embedding_bias",
    "activation_fn": "hidden_act",
    "conv_pos": "num_conv_pos_embeddings",
    "conv_pos_groups": "num_conv_pos_embedding_groups",
    "num_buckets": "num_buckets",
    "max_distance": "max_distance",
    "dropout": "hidden_dropout",
    "attention_dropout": "attention_dropout",
    "activation_dropout": "activation_dropout",
    "encoder_layerdrop": "layerdrop",
}
TINY = TINY_AUDIO_CONFIG  # layerdrop 0 unless a test sets it


def convert_key(key: str) -> str | None:
    """Our name (inside the encoder) of an original `model.audio_tower.*` tensor (None: not kept): the release's key
    table, then the renamings transformers applies to every checkpoint when loading (`weight_g`/`weight_v` of a
    weight norm become the parametrization's `original0`/`original1`)."""
    name = convert_original_key(key)
    if name is None:
        return None
    return apply_renamings(name, get_checkpoint_conversion_mapping("legacy")).removeprefix(TOWER_PREFIX)


@pytest.fixture(scope="module")
def original(fixtures_dir):
    folder = fixtures_dir / AV_VARIANT
    weights = {}
    for shard in sorted((folder / "original_checkpoint").glob("*.safetensors")):
        weights.update(load_file(shard))
    beats = json.loads((folder / "audio_tower_config.json").read_text())
    return {"weights": weights, "beats_config": beats, "reference": load_file(folder / "reference.safetensors")}


@pytest.fixture(scope="module")
def fixture_encoder(original):
    """The fixture's BEATs in float32 (the checkpoint is bfloat16, upcast exactly as the reference was)."""
    beats = original["beats_config"]
    config = VideoLlama2AudioEncoderConfig(**{ours: beats[theirs] for theirs, ours in BEATS_CONFIG_FIELDS.items()})
    state_dict = {}
    for key, tensor in original["weights"].items():
        if key.startswith(TOWER_PREFIX) and convert_key(key) is not None:
            state_dict[convert_key(key)] = tensor.float()
    model = VideoLlama2AudioEncoder(config).eval()
    model.load_state_dict(state_dict, strict=True)
    return model


def test_fixture_config_differs_from_the_defaults_only_in_size(original):
    """The original builds BEATsConfig() from code defaults (the fixture shrank only the sizes): every default it
    has that the encoder reads is ours too."""
    beats, defaults = original["beats_config"], VideoLlama2AudioEncoderConfig()
    sizes = {"embed_dim", "encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_layers", "encoder_attention_heads"}
    for theirs, ours in BEATS_CONFIG_FIELDS.items():
        if theirs not in sizes:
            assert getattr(defaults, ours) == beats[theirs], theirs
    assert (beats["layer_norm_first"], beats["deep_norm"], beats["gru_rel_pos"]) == (False, True, True)
    assert beats["relative_position_embedding"] and beats["dropout_input"] == 0.0


def test_default_config_is_the_released_encoder():
    """BEATs iter3+: 90,717,055 parameters with the unused AudioSet classifier (768 x 527 + 527), which is dropped."""
    with torch.device("meta"):
        model = VideoLlama2AudioEncoder(VideoLlama2AudioEncoderConfig())
    assert sum(parameter.numel() for parameter in model.parameters()) == 90_717_055 - (768 * 527 + 527)


def test_checkpoint_keys_map_by_prefix(original, fixture_encoder):
    """Every `model.audio_tower.*` tensor maps onto the encoder; the per-layer copies of the shared relative-position
    table are identical and only layer 0's is kept; `predictor` (AudioSet classifier) is dropped."""
    keys = [key for key in original["weights"] if key.startswith(TOWER_PREFIX)]
    kept = {convert_key(key) for key in keys} - {None}
    assert kept == set(fixture_encoder.state_dict())
    dropped = sorted(key for key in keys if convert_key(key) is None)
    assert dropped == [
        "model.audio_tower.encoder.layers.1.self_attn.relative_attention_bias.weight",
        "model.audio_tower.predictor.bias",
        "model.audio_tower.predictor.weight",
    ]
    tables = [original["weights"][key] for key in keys if "relative_attention_bias" in key]
    assert all(torch.equal(table, tables[0]) for table in tables)
    assert [key for key in fixture_encoder.state_dict() if "relative_attention_bias" in key] == [
        "encoder.relative_attention_bias.weight"
    ]


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
@pytest.mark.parametrize("case", ["av", "audio"])
def test_matches_the_original(case, attn_implementation, original, fixture_encoder):
    reference = original["reference"]
    fixture_encoder.set_attn_implementation(attn_implementation)
    with torch.no_grad():
        output = fixture_encoder(reference[f"{case}.fbank"].float())
    assert output.last_hidden_state.shape == reference[f"{case}.audio_features"].shape == (1, 1496, 48)
    torch.testing.assert_close(output.last_hidden_state, reference[f"{case}.audio_features"], rtol=0, atol=1e-4)


def test_patch_embedding_matches_the_original(original, fixture_encoder):
    """Normalisation, 16 x 16 patches flattened time-major, LayerNorm, projection: the input of the position conv."""
    reference = original["reference"]
    with torch.no_grad():
        embedded = fixture_encoder.embed_patches(reference["audio.fbank"].float())
    torch.testing.assert_close(embedded, reference["audio.audio_encoder_input"], rtol=0, atol=1e-4)


@pytest.mark.parametrize("case", ["av", "audio"])
def test_audio_projector_on_the_encoder_output(case, original, fixture_encoder):
    """`mm_projector_a` (mlp2x_gelu: Linear(48, 8), exact GELU, Linear(8, 8)) on our BEATs output."""
    weights, reference = original["weights"], original["reference"]
    with torch.no_grad():
        features = fixture_encoder(reference[f"{case}.fbank"].float()).last_hidden_state
        hidden = torch.nn.functional.linear(
            features, weights["model.mm_projector_a.0.weight"].float(), weights["model.mm_projector_a.0.bias"].float()
        )
        projected = torch.nn.functional.linear(
            torch.nn.functional.gelu(hidden),
            weights["model.mm_projector_a.2.weight"].float(),
            weights["model.mm_projector_a.2.bias"].float(),
        )
    torch.testing.assert_close(projected, reference[f"{case}.audio_mm_features"], rtol=0, atol=1e-4)


def _expected_bucket(offset: int, num_buckets: int = 320, max_distance: int = 800) -> int:
    """T5's bidirectional bucketing, written out in float64 scalar arithmetic."""
    half = num_buckets // 2
    exact = half // 2
    base = half if offset > 0 else 0
    distance = abs(offset)
    if distance < exact:
        return base + distance
    return base + min(half - 1, exact + int(math.log(distance / exact) / math.log(max_distance / exact) * exact))


def test_relative_position_buckets():
    offsets = torch.arange(-1600, 1601)
    buckets = relative_position_bucket(offsets, 320, 800)
    assert buckets.tolist() == [_expected_bucket(offset) for offset in offsets.tolist()]
    assert buckets[1600 + 79].item() == 160 + 79 and buckets[1600 - 800].item() == 159  # last exact, first clamped


def test_position_conv_weight_norm_has_the_originals_epsilon(fixture_encoder):
    conv = fixture_encoder.encoder.pos_conv
    originals = conv.parametrizations.weight
    g, v = (tensor.detach().double().numpy() for tensor in (originals.original0, originals.original1))
    expected = g * v / np.sqrt((v**2).sum(axis=(0, 1), keepdims=True) + 1e-6)
    np.testing.assert_allclose(conv.weight.detach().numpy(), expected, rtol=1e-6, atol=1e-7)


def tiny_encoder(**kwargs) -> VideoLlama2AudioEncoder:
    torch.manual_seed(0)
    return VideoLlama2AudioEncoder(VideoLlama2AudioEncoderConfig(**{**TINY, **kwargs})).eval()


def random_features(batch_size: int = 2, num_frames: int = 70) -> torch.Tensor:
    return torch.randn(batch_size, num_frames, TINY["num_mel_bins"], generator=torch.Generator().manual_seed(1)) * 5


def test_hidden_states_attentions_and_tuples():
    model = tiny_encoder(attn_implementation="eager")
    features = random_features()
    with torch.no_grad():
        output = model(features, output_hidden_states=True, output_attentions=True)
        embedded = model.embed_patches(features)
        first = model.encoder.layer_norm(embedded + model.encoder.pos_conv(embedded))
        as_tuple = model(features, return_dict=False)
    tokens = (70 // 16) * (32 // 16)
    assert output.last_hidden_state.shape == (2, tokens, 24)
    assert len(output.hidden_states) == 3 and len(output.attentions) == 2
    torch.testing.assert_close(output.hidden_states[0], first)
    torch.testing.assert_close(output.hidden_states[-1], output.last_hidden_state)
    assert output.attentions[0].shape == (2, 4, tokens, tokens)
    torch.testing.assert_close(output.attentions[0].sum(-1), torch.ones(2, 4, tokens))
    assert isinstance(as_tuple, tuple) and torch.equal(as_tuple[0], output.last_hidden_state)


def test_attention_backends_agree_and_batch_rows_are_independent():
    model, features = tiny_encoder(), random_features()
    with torch.no_grad():
        sdpa = model(features).last_hidden_state
        model.set_attn_implementation("eager")
        eager = model(features).last_hidden_state
        alone = model(features[1:]).last_hidden_state
    torch.testing.assert_close(sdpa, eager, rtol=0, atol=1e-5)
    torch.testing.assert_close(alone[0], eager[1], rtol=0, atol=1e-5)


def test_token_count_follows_the_patch_grid():
    model = tiny_encoder()
    for num_frames, tokens in [(16, 2), (70, 8), (2998, 374)]:
        with torch.no_grad():
            output = model(torch.zeros(1, num_frames, 32)).last_hidden_state
        assert output.shape[1] == tokens == model.config.get_num_audio_tokens(num_frames)


def test_initialisation():
    """Position conv: `g` starts as the per-tap norm of `v`, so the effective weight is `v`; gates open at 1."""
    model = tiny_encoder()
    conv = model.encoder.pos_conv
    torch.testing.assert_close(conv.weight, conv.parametrizations.weight.original1, rtol=1e-5, atol=1e-6)
    attention = model.encoder.layers[0].self_attn
    assert torch.equal(attention.gru_rel_pos_const, torch.ones_like(attention.gru_rel_pos_const))
    assert not attention.q_proj.bias.any() and not attention.out_proj.bias.any()
    assert model.encoder.relative_attention_bias.weight.std() > 0


def test_save_and_load_round_trip(tmp_path):
    model, features = tiny_encoder(), random_features()
    model.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, VideoLlama2AudioEncoderConfig) and config.hidden_size == 24
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, VideoLlama2AudioEncoder)
    with torch.no_grad():
        assert torch.equal(loaded(features).last_hidden_state, model(features).last_hidden_state)


def test_lower_precision_and_training():
    features = random_features()
    model = tiny_encoder().to(torch.bfloat16)
    with torch.no_grad():
        assert model(features).last_hidden_state.dtype == torch.bfloat16  # float32 features are cast by the model
    model = tiny_encoder(layerdrop=0.0).train()
    model.activation_checkpointing_enable()
    model(features).last_hidden_state.sum().backward()
    assert model.encoder.relative_attention_bias.weight.grad.abs().sum() > 0
    skipping = tiny_encoder(layerdrop=1.0)  # layers are dropped during training only
    with torch.no_grad():
        embedded = skipping.embed_patches(features)
        before_layers = skipping.encoder.layer_norm(embedded + skipping.encoder.pos_conv(embedded))
        assert not torch.equal(skipping(features).last_hidden_state, before_layers)
        assert torch.equal(skipping.train()(features).last_hidden_state, before_layers)


def test_user_errors():
    model = tiny_encoder()
    with pytest.raises(ValueError, match=r"must be \(batch, frames, 32\) filterbanks, got shape \(70, 32\)"):
        model(torch.zeros(70, 32))
    with pytest.raises(ValueError, match="fewer than one 16-frame patch"):
        model(torch.zeros(1, 15, 32))
    with pytest.raises(StrictDataclassError, match="must be divisible by num_attention_heads"):
        VideoLlama2AudioEncoderConfig(hidden_size=50, num_attention_heads=4)
    with pytest.raises(StrictDataclassError, match="num_buckets must be even"):
        VideoLlama2AudioEncoderConfig(num_buckets=321)


def test_fused_attention_for_the_audio_visual_model_is_chosen_per_tower(tmp_path):
    """The audio encoder adds a gated relative-position bias to its attention scores, which kernels without an
    additive float mask (flash, flex) cannot take: asking one for the whole audio-visual model is refused by name,
    and the per-tower form gives the LLM and the vision tower the fused kernel and the audio encoder sdpa. flex
    attention stands in for flash attention here (same refusal, and it runs on CPU)."""
    from transformers import AutoModelForImageTextToText
    from videollama2_test_utils import tiny_config

    from videollama2_hf import VideoLlama2ForConditionalGeneration

    VideoLlama2ForConditionalGeneration(tiny_config(audio=True)).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="VideoLlama2AudioEncoder does not support .*flex_attention"):
        AutoModelForImageTextToText.from_pretrained(tmp_path, attn_implementation="flex_attention")
    per_tower = {"text_config": "flex_attention", "vision_config": "flex_attention", "audio_config": "sdpa"}
    model = AutoModelForImageTextToText.from_pretrained(tmp_path, attn_implementation=per_tower)
    config = model.config
    assert (config.text_config._attn_implementation, config.vision_config._attn_implementation) == (
        "flex_attention",
    ) * 2
    assert config.audio_config._attn_implementation == "sdpa"
    assert model.model.audio_tower.config._attn_implementation == "sdpa"
