"""What vLLM's Transformers modeling backend asks of a custom multimodal model and its processor (docs/serving.md,
"vLLM"), each requirement checked by the call vLLM makes, on a tiny converted checkpoint. vLLM itself cannot run
here (no GPU, no CPU wheel for transformers 5), so these emulate its calls with transformers alone.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AttentionInterface, AutoConfig, AutoModel, AutoProcessor
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from videollama2_hf import VideoLlama2ForConditionalGeneration, VideoLlama2Model, cli


IMAGE_SIZE, VIDEO_SIZE = (48, 64), (8, 40, 40)  # (height, width), (frames, height, width)


@pytest.fixture(scope="module")
def folder(fixtures_dir, tmp_path_factory):
    """A folder as `videollama2-hf convert` writes it (its `auto_map` and remote code included)."""
    variant, out = fixtures_dir / "mistral_stc_f8", tmp_path_factory.mktemp("vllm") / "converted"
    tower = str(variant / "vision_tower")
    assert cli.main(["convert", str(variant / "original_checkpoint"), str(out), "--vision-tower", tower, "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def processor(folder):
    return AutoProcessor.from_pretrained(folder)


@pytest.fixture(scope="module")
def inputs(processor):
    """An image and a video in one prompt, with the token-type ids vLLM asks for."""
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (*IMAGE_SIZE, 3), dtype=np.uint8))
    video = np.random.default_rng(1).integers(0, 256, (*VIDEO_SIZE, 3), dtype=np.uint8)
    return processor(
        text="<image>\n<video>\nCompare them.",
        images=[image],
        videos=[video],
        return_mm_token_type_ids=True,
        return_tensors="pt",
    )


def test_auto_map_names_config_base_model_and_processor(folder):
    """vLLM loads remote code through `auto_map`: the config, the base model it instantiates, the processor; their
    files are in the folder."""
    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    assert auto_map["AutoConfig"] == "configuration_videollama2.VideoLlama2Config"
    assert auto_map["AutoModel"] == "modeling_videollama2.VideoLlama2Model"
    assert auto_map["AutoModelForImageTextToText"] == "modeling_videollama2.VideoLlama2ForConditionalGeneration"
    assert all((folder / f"{entry.split('.')[0]}.py").is_file() for entry in auto_map.values())
    processor_map = json.loads((folder / "processor_config.json").read_text())["auto_map"]
    assert processor_map["AutoProcessor"] == "processing_videollama2.VideoLlama2Processor"


def test_base_model_from_config_on_the_meta_device(folder):
    """vLLM builds the base model with `AutoModel.from_config` on the meta device, and finds each modality's
    encoder with `get_encoder(modality=...)`."""
    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    assert type(model) is VideoLlama2Model and model._supports_attention_backend
    for modality in ("image", "video"):
        assert model.get_encoder(modality=modality) is model.vision_tower
    assert VideoLlama2ForConditionalGeneration._supports_attention_backend


def test_attention_backend_receives_the_forward_kwargs(folder, inputs):
    """vLLM registers its own attention function, selects it with the attention implementation and passes its
    state through `forward(**kwargs)` down to every attention call; the answer must not change."""
    calls = []

    def recording_attention(module, query, key, value, attention_mask, **kwargs):
        calls.append(kwargs.get("vllm_state"))
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register("vllm_emulation", recording_attention)
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    model_inputs = {key: value for key, value in inputs.items() if key != "mm_token_type_ids"}
    with torch.inference_mode():
        expected = model(**model_inputs).last_hidden_state
        model.set_attn_implementation("vllm_emulation")
        state = object()
        output = model(**model_inputs, vllm_state=state).last_hidden_state
    language_layers = model.config.text_config.num_hidden_layers
    assert calls.count(state) >= language_layers  # every decoder layer (the vision tower's layers too)
    torch.testing.assert_close(output, expected)


def test_tensor_parallel_plan_names_language_model_modules(folder):
    """vLLM shards with the base model's `tp_plan` (the text config's `base_model_tp_plan` under the language
    model's prefix): every pattern matches modules of the model."""
    config = AutoConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    plan = model.tp_plan
    assert plan and all(pattern.startswith("language_model.") for pattern in plan)
    names = [name for name, _ in model.named_modules()]
    for pattern in plan:
        prefix, _, suffix = pattern.partition(".*.")
        assert any(name.startswith(prefix) and name.endswith(suffix or prefix) for name in names), pattern


def test_mm_token_type_ids_mark_the_placeholders(processor, inputs):
    """`return_mm_token_type_ids=True`: 1 on image tokens, 2 on video tokens, 0 elsewhere."""
    ids, types = inputs["input_ids"][0], inputs["mm_token_type_ids"][0]
    assert torch.equal(types == 1, ids == processor.image_token_id)
    assert torch.equal(types == 2, ids == processor.video_token_id)
    assert set(types.tolist()) == {0, 1, 2}


def test_num_multimodal_tokens_and_features_agree(folder, processor, inputs):
    """vLLM sizes its placeholders with `_get_num_multimodal_tokens(image_sizes=..., video_sizes=...)` before
    running the model, then splits what `get_image_features` / `get_video_features` return by those counts."""
    counts = processor._get_num_multimodal_tokens(image_sizes=[IMAGE_SIZE], video_sizes=[VIDEO_SIZE])
    ids = inputs["input_ids"][0]
    assert counts["num_image_tokens"] == [int((ids == processor.image_token_id).sum())]
    assert counts["num_video_tokens"] == [int((ids == processor.video_token_id).sum())]
    assert counts["num_image_patches"] == [1]
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    hidden = model.config.text_config.hidden_size
    with torch.inference_mode():
        image = model.get_image_features(inputs["pixel_values"]).pooler_output
        video = model.get_video_features(inputs["pixel_values_videos"]).pooler_output
    assert image.reshape(-1, hidden).shape[0] == counts["num_image_tokens"][0]
    assert video.reshape(-1, hidden).shape[0] == counts["num_video_tokens"][0]
