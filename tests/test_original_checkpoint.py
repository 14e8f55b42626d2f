"""Released (original-layout) checkpoints load directly through the Auto classes and match the original's outputs.

Every fixture variant is loaded with `AutoModelForImageTextToText.from_pretrained(original_dir)` and
`AutoProcessor.from_pretrained(original_dir)` (no conversion step); its logits on the fixture's inputs equal the
reference tensors produced by the original implementation, and `save_pretrained` writes the transformers layout.
"""

import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForImageTextToText, AutoProcessor
from videollama2_test_utils import FIXTURE_VARIANTS, assert_logits_close, expanded_ids, original_folder

from videollama2_hf import (
    VideoLlama2Config,
    VideoLlama2ForConditionalGeneration,
    VideoLlama2Model,
    VideoLlama2Processor,
)
from videollama2_hf.original_checkpoint import load_original_processor
from videollama2_hf.original_layout import convert_config, load_original_tokenizer


class Loaded:
    """One variant loaded directly from its original layout, with the original's reference outputs."""

    def __init__(self, fixtures_dir, name):
        self.name = name
        self.dir = fixtures_dir / name
        self.checkpoint = self.dir / "original_checkpoint"
        self.tower = self.dir / "vision_tower"
        self.reference = load_file(self.dir / "reference.safetensors")
        self.meta = json.loads((self.dir / "reference.json").read_text())
        self.model, self.loading_info = AutoModelForImageTextToText.from_pretrained(
            self.checkpoint, vision_tower=self.tower, dtype=torch.float32, output_loading_info=True
        )
        self.model.eval()
        self.processor = load_original_processor(self.checkpoint, vision_tower=self.tower)
        frames = load_file(fixtures_dir / "inputs" / f"frames_f{self.model.config.num_frames}.safetensors")
        self.frames = frames["frames_uint8"]

    def ids(self, case):
        token_id = self.model.config.video_token_id if case == "video" else self.model.config.image_token_id
        return expanded_ids(self.meta["cases"][case], case, token_id)

    def pixels(self, case):
        if case == "video":
            return {"pixel_values_videos": self.reference["video.pixel_values"][None]}
        return {"pixel_values": self.reference["image.pixel_values"]}


@pytest.fixture(scope="module", params=FIXTURE_VARIANTS)
def loaded(request, fixtures_dir):
    return Loaded(fixtures_dir, request.param)


def test_auto_classes_give_our_classes(loaded):
    assert type(loaded.model) is VideoLlama2ForConditionalGeneration
    assert type(loaded.model.config) is VideoLlama2Config
    assert type(loaded.processor) is VideoLlama2Processor
    assert not any(loaded.loading_info.values()), loaded.loading_info


def test_config_is_the_converter_translation(loaded):
    original = json.loads((loaded.checkpoint / "config.json").read_text())
    tower = json.loads((loaded.tower / "config.json").read_text())
    tokenizer = load_original_tokenizer(loaded.checkpoint)
    expected = VideoLlama2Config(
        **convert_config(original, tower, tokenizer.image_token_id, tokenizer.video_token_id)
    ).to_dict()
    actual = AutoConfig.from_pretrained(loaded.checkpoint, vision_tower=loaded.tower).to_dict()
    assert actual.pop("dtype") == "bfloat16"  # the original's torch_dtype, as a converted copy records it
    expected.pop("dtype", None)
    for ignored in ("_name_or_path", "transformers_version"):
        actual.pop(ignored, None), expected.pop(ignored, None)
    assert actual == expected


@pytest.mark.parametrize("case", ["video", "image"])
def test_logits_match_the_original(loaded, case):
    ref = loaded.reference
    ids = torch.tensor([loaded.ids(case)])
    with torch.no_grad():
        outputs = loaded.model(input_ids=ids, labels=ids, **loaded.pixels(case))
    logits = outputs.logits
    assert_logits_close(logits[:, -1], ref[f"{case}.logits_last"], "last logits")
    assert_logits_close(logits.logsumexp(-1), ref[f"{case}.logits_lse"], "logsumexp")
    assert_logits_close(logits[..., ref[f"{case}.logits_sel_ids"]], ref[f"{case}.logits_sel"], "selected logits")
    assert torch.equal(logits.argmax(-1), ref[f"{case}.logits_argmax"])
    assert_logits_close(outputs.loss, ref[f"{case}.loss"], "loss")


def test_processor_matches_the_original(loaded, media_dir):
    from PIL import Image

    cases = loaded.meta["cases"]
    image = loaded.processor(  # the prompts hold the template's BOS already
        text=cases["image"]["prompt"],
        images=[Image.open(media_dir / cases["image"]["media_file"])],
        add_special_tokens=False,
    )
    assert image["input_ids"][0].tolist() == loaded.ids("image")
    torch.testing.assert_close(image["pixel_values"], loaded.reference["image.pixel_values"], atol=1e-6, rtol=0)
    # the decoded frames at the original's sampled indices, given as an array
    video = loaded.processor(text=cases["video"]["prompt"], videos=[loaded.frames.numpy()], add_special_tokens=False)
    assert video["input_ids"][0].tolist() == loaded.ids("video")
    torch.testing.assert_close(
        video["pixel_values_videos"][0], loaded.reference["video.pixel_values"], atol=1e-6, rtol=0
    )


def test_save_pretrained_writes_the_transformers_layout(loaded, tmp_path):
    loaded.model.save_pretrained(tmp_path)
    loaded.processor.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "videollama2" and "mm_vision_tower" not in config
    names = set()
    for shard in tmp_path.glob("*.safetensors"):
        with safe_open(shard, "pt") as handle:
            names.update(handle.keys())
    assert names and all(
        name.startswith(("model.language_model.", "model.vision_tower.", "lm_head."))
        or name.startswith("model.multi_modal_projector.")
        for name in names
    )
    assert (tmp_path / "processor_config.json").is_file()  # read as a transformers folder from now on

    reloaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    processor = AutoProcessor.from_pretrained(tmp_path)
    assert reloaded.dtype == torch.float32  # saved as loaded
    ids = torch.tensor([loaded.ids("video")])
    with torch.no_grad():
        expected = loaded.model(input_ids=ids, **loaded.pixels("video")).logits
        assert torch.equal(reloaded(input_ids=ids, **loaded.pixels("video")).logits, expected)
    prompt = loaded.meta["cases"]["video"]["prompt"]
    frames = [loaded.frames.numpy()]
    torch.testing.assert_close(
        processor(text=prompt, videos=frames)["input_ids"], loaded.processor(text=prompt, videos=frames)["input_ids"]
    )


def test_base_model_loads_from_the_original_layout(fixtures_dir):
    variant = fixtures_dir / "mixtral_stc"
    model, info = AutoModel.from_pretrained(
        variant / "original_checkpoint", vision_tower=variant / "vision_tower", output_loading_info=True
    )
    assert type(model) is VideoLlama2Model
    assert not info["missing_keys"] and not info["mismatched_keys"]
    assert info["unexpected_keys"] == {"lm_head.weight"}  # as for any base model loaded from a *ForCausalLM repo


def test_vision_tower_subfolder_needs_no_argument(fixtures_dir, tmp_path):
    folder = original_folder(fixtures_dir, "qwen2_siglip_stcv35_f16", tmp_path / "checkpoint")
    model = AutoModelForImageTextToText.from_pretrained(folder)
    processor = load_original_processor(folder)
    assert model.dtype == torch.bfloat16  # the original's torch_dtype, like a converted copy
    assert model.config.vision_config.image_size == 56
    assert processor.image_processor.size == {"height": 56, "width": 56}


def test_released_towers_come_from_the_presets(fixtures_dir):
    for variant, size, tower in [("mistral_stc_f8", 336, "clip"), ("qwen2_siglip_stcv35_f16", 384, "siglip")]:
        checkpoint = fixtures_dir / variant / "original_checkpoint"
        config = AutoConfig.from_pretrained(checkpoint)  # the fixture names the real tower: its full-size config
        assert config.vision_config.model_type == f"{tower}_vision_model"
        assert config.vision_config.image_size == size
        processor = load_original_processor(checkpoint)
        video_size = (config.num_frames, 360, 640)
        assert processor._get_num_multimodal_tokens(video_sizes=[video_size])["num_video_tokens"] == [
            config.get_num_visual_tokens()
        ]


@pytest.mark.parametrize("variant", ["mixtral_stc", "qwen2_siglip_stcv35_f16"])
def test_direct_loading_equals_the_converted_copy(fixtures_dir, tmp_path, variant):
    from videollama2_hf.convert_videollama2_weights_to_hf import convert_videollama2_checkpoint

    source = fixtures_dir / variant
    converted = tmp_path / "converted"
    convert_videollama2_checkpoint(
        source / "original_checkpoint", converted, vision_tower=source / "vision_tower", progress=False
    )
    direct = AutoModelForImageTextToText.from_pretrained(
        source / "original_checkpoint", vision_tower=source / "vision_tower"
    ).eval()
    copy = AutoModelForImageTextToText.from_pretrained(converted).eval()
    assert direct.dtype == copy.dtype == torch.bfloat16
    # the converted copy also ships remote code and the VQA custom pipeline
    ignored = {"architectures": None, "auto_map": None, "_name_or_path": None, "custom_pipelines": None}
    assert direct.config.to_diff_dict() | ignored == copy.config.to_diff_dict() | ignored
    direct_state, copy_state = direct.state_dict(), copy.state_dict()
    assert direct_state.keys() == copy_state.keys()
    assert all(torch.equal(direct_state[name], copy_state[name]) for name in direct_state)

    direct_processor = load_original_processor(source / "original_checkpoint", vision_tower=source / "vision_tower")
    copy_processor = AutoProcessor.from_pretrained(converted)
    assert direct_processor.chat_template == copy_processor.chat_template
    frames = load_file(fixtures_dir / "inputs" / f"frames_f{direct.config.num_frames}.safetensors")["frames_uint8"]
    messages = [{"role": "user", "content": [{"type": "text", "text": "<video>\nWhat?"}]}]
    prompt = direct_processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = direct_processor(text=prompt, videos=[frames.numpy()], add_special_tokens=False)
    again = copy_processor(text=prompt, videos=[frames.numpy()], add_special_tokens=False)
    assert torch.equal(inputs["input_ids"], again["input_ids"])
    assert torch.equal(inputs["pixel_values_videos"], again["pixel_values_videos"])
    with torch.no_grad():
        assert torch.equal(direct(**inputs).logits, copy(**inputs).logits)


def test_release_whose_config_says_a_text_model_type(fixtures_dir, tmp_path):
    """VideoLLaMA2-72B's config.json says model_type "qwen2": AutoConfig gives a Qwen2Config, so the Auto classes
    cannot pick VideoLLaMA2; `load_original_config` (used by `videollama2-hf ask`) still loads it."""
    from videollama2_hf.inference import load_model_and_processor
    from videollama2_hf.original_checkpoint import load_original_config

    folder = original_folder(fixtures_dir, "qwen2_siglip_stcv35_f16", tmp_path / "72b-like")
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="qwen2", architectures=["Qwen2ForCausalLM"])
    (folder / "config.json").unlink()
    (folder / "config.json").write_text(json.dumps(config))
    assert type(AutoConfig.from_pretrained(folder)).__name__ == "Qwen2Config"

    loaded = load_original_config(folder)
    assert type(loaded) is VideoLlama2Config and loaded.text_config.model_type == "qwen2"
    model = VideoLlama2ForConditionalGeneration.from_pretrained(folder, config=loaded, dtype=torch.float32)
    reference = AutoModelForImageTextToText.from_pretrained(
        fixtures_dir / "qwen2_siglip_stcv35_f16" / "original_checkpoint",
        vision_tower=fixtures_dir / "qwen2_siglip_stcv35_f16" / "vision_tower",
        dtype=torch.float32,
    )
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))
    cli_model, processor = load_model_and_processor(str(folder), dtype="float32", device="cpu")
    assert type(cli_model) is VideoLlama2ForConditionalGeneration and type(processor) is VideoLlama2Processor


def test_our_own_classes_need_the_release_config_from_auto_config(fixtures_dir, tmp_path):
    """The model files know nothing of the original layout: `VideoLlama2ForConditionalGeneration.from_pretrained` of a
    release takes the config `AutoConfig` reads (as the Auto model classes do), and refuses to guess one (the defaults
    would be a random 7B model)."""
    folder = original_folder(fixtures_dir, "mistral_stc_f8", tmp_path / "release")  # its tower in vision_tower/
    with pytest.raises(ValueError, match="model_type 'videollama2_mistral' is not a VideoLlama2Config"):
        VideoLlama2ForConditionalGeneration.from_pretrained(folder)
    config = AutoConfig.from_pretrained(folder)
    model, info = VideoLlama2ForConditionalGeneration.from_pretrained(folder, config=config, output_loading_info=True)
    assert model.config.text_config.hidden_size == 64 and model.config.vision_config.image_size == 56
    assert not any(info.values()), info
    with pytest.raises(ValueError, match="model_type 'bert' is not a VideoLlama2Config"):
        VideoLlama2Config.from_dict({"model_type": "bert", "hidden_size": 8})
