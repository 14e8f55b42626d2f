"""VideoLlama2Processor: placeholder expansion, chat templates, errors, save/load, on the real fixture tokenizers."""

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers import AutoImageProcessor, AutoProcessor, CLIPImageProcessorPil, SiglipImageProcessorPil

from videollama2_hf import VideoLlama2Config, VideoLlama2ImageProcessor, VideoLlama2Processor, num_visual_tokens
from videollama2_hf.original_checkpoint import original_processor
from videollama2_hf.original_layout import convert_config, load_chat_template, load_original_tokenizer


def build_processor(fixtures_dir, variant):
    folder = fixtures_dir / variant
    tokenizer = load_original_tokenizer(folder / "original_checkpoint")
    original = json.loads((folder / "original_checkpoint" / "config.json").read_text())
    tower = json.loads((folder / "vision_tower" / "config.json").read_text())
    config = VideoLlama2Config(**convert_config(original, tower, tokenizer.image_token_id, tokenizer.video_token_id))
    return original_processor(folder / "original_checkpoint", vision_tower=folder / "vision_tower"), config


@pytest.fixture(scope="module")
def mistral(fixtures_dir):
    return build_processor(fixtures_dir, "mistral_stc_f8")


@pytest.fixture(scope="module")
def qwen(fixtures_dir):
    return build_processor(fixtures_dir, "qwen2_siglip_stcv35_f16")


@pytest.fixture(scope="module")
def image(media_dir):
    return Image.open(media_dir / "extreme_ironing.jpg")


def count(ids, token_id):
    return int((ids == token_id).sum())


def test_placeholder_tokens_are_added_past_the_vocabulary(mistral, qwen):
    assert (mistral[0].image_token_id, mistral[0].video_token_id) == (32000, 32001)
    assert (qwen[0].image_token_id, qwen[0].video_token_id) == (151646, 151647)


def test_image_expands_to_the_connector_token_count(mistral, qwen, image):
    for processor, config in (mistral, qwen):
        inputs = processor(text="<image>\nWhat is this?", images=[image])
        assert count(inputs["input_ids"], processor.image_token_id) == config.get_num_visual_tokens()
        assert inputs["pixel_values"].shape == (1, 3, 56, 56)


def test_video_expands_with_its_frame_count(mistral, media_dir):
    processor, config = mistral
    video = str(media_dir / "sample_demo_3.mp4")
    for frames in (8, 16):
        inputs = processor(text="<video>\nWhat happens?", videos=[video], videos_kwargs={"num_frames": frames})
        assert inputs["pixel_values_videos"].shape == (1, frames, 3, 56, 56)
        assert count(inputs["input_ids"], processor.video_token_id) == num_visual_tokens("stc_connector", 4, frames)


@pytest.mark.parametrize(
    "text,media,message",
    [
        ("<video><video> two placeholders", "video", "tokens in the prompts should be the same"),
        ("no placeholder", "video", "tokens in the prompts should be the same"),
        ("<image> without media", None, "no images were passed"),
    ],
)
def test_placeholder_and_media_counts_must_agree(mistral, media_dir, image, text, media, message):
    processor = mistral[0]
    kwargs = {"videos": [str(media_dir / "sample_demo_3.mp4")]} if media == "video" else {}
    with pytest.raises(ValueError, match=message):
        processor(text=text, **kwargs)


def test_truncation_through_placeholders_is_an_error(fixtures_dir, image):
    # a processor of its own: the tokenizer keeps the truncation setting of a failed call until its next call
    processor, _ = build_processor(fixtures_dir, "mistral_stc_f8")
    with pytest.raises(ValueError, match="truncation"):
        processor(text="<image>\nDescribe.", images=[image], truncation=True, max_length=10)


def test_chat_template_inserts_default_system_message(mistral, qwen):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi?"}]}]
    mistral_prompt = mistral[0].apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert mistral_prompt.startswith("<s> [INST] <<SYS>>\nYou are a helpful, respectful and honest assistant.")
    assert mistral_prompt.endswith("<</SYS>>\n\n<image>\nHi? [/INST]")
    qwen_prompt = qwen[0].apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert qwen_prompt == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n<image>\nHi?<|im_end|>\n<|im_start|>assistant\n"
    )
    with pytest.raises(ValueError, match="No preset describes a 'gemma' language model"):
        load_chat_template("gemma")


def test_apply_chat_template_returns_model_ready_tensors(mistral, media_dir):
    processor, config = mistral
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "video", "path": str(media_dir / "sample_demo_1.mp4")},
                {"type": "text", "text": "What does the baby do?"},
            ],
        }
    ]
    inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    assert inputs["pixel_values_videos"].shape == (1, 8, 3, 56, 56)
    assert count(inputs["input_ids"], processor.video_token_id) == config.get_num_visual_tokens() == 45
    assert inputs["input_ids"][0, 0].item() == processor.tokenizer.bos_token_id  # BOS from the template, not twice
    assert inputs["input_ids"][0, 1].item() != processor.tokenizer.bos_token_id


def test_save_and_reload_through_auto_processor(mistral, tmp_path, image):
    processor, _ = mistral
    processor.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded, VideoLlama2Processor)
    assert type(reloaded.image_processor) is VideoLlama2ImageProcessor
    assert type(reloaded.video_processor) is type(processor.video_processor)
    assert reloaded.chat_template == processor.chat_template
    assert (reloaded.projector_type, reloaded.patch_size) == (processor.projector_type, processor.patch_size)
    first = processor(text="<image>\nDescribe.", images=[image])
    second = reloaded(text="<image>\nDescribe.", images=[image])
    assert torch.equal(first["input_ids"], second["input_ids"])
    assert torch.equal(first["pixel_values"], second["pixel_values"])


@pytest.mark.parametrize("variant", ["mistral", "qwen"])
def test_saved_image_processor_gives_the_towers_pil_pixels_through_auto_image_processor(
    variant, request, fixtures_dir, tmp_path, image
):
    """The tower's own PIL processor (what the original ran) and the saved one, loaded by the Auto class alone."""
    processor, _ = request.getfixturevalue(variant)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())["image_processor"]
    assert saved["image_processor_type"] == "VideoLlama2ImageProcessor"
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(loaded) is VideoLlama2ImageProcessor
    tower_folder = fixtures_dir / ("mistral_stc_f8" if variant == "mistral" else "qwen2_siglip_stcv35_f16")
    settings = json.loads((tower_folder / "vision_tower" / "preprocessor_config.json").read_text())
    settings = {key: value for key, value in settings.items() if not key.endswith("_type")}
    tower = (CLIPImageProcessorPil if variant == "mistral" else SiglipImageProcessorPil)(**settings)
    expected = tower(image, return_tensors="pt")["pixel_values"]
    assert torch.equal(loaded(image, return_tensors="pt")["pixel_values"], expected)
    assert torch.equal(processor(text="<image>", images=[image])["pixel_values"], expected)


def test_from_pretrained_kwargs_reach_the_image_and_video_processors(mistral, tmp_path, image):
    processor, _ = mistral
    processor.save_pretrained(tmp_path)
    changed = {"do_normalize": False, "size": {"height": 28, "width": 28}, "do_center_crop": False}
    reloaded = VideoLlama2Processor.from_pretrained(tmp_path, **changed)
    for sub_processor in (reloaded.image_processor, reloaded.video_processor):
        assert sub_processor.do_normalize is False and sub_processor.do_center_crop is False
        assert (sub_processor.size.height, sub_processor.size.width) == (28, 28)
    pixels = reloaded(text="<image>", images=[image])["pixel_values"]
    frames = reloaded(text="<video>", videos=[[np.asarray(image)] * 8])["pixel_values_videos"]
    assert pixels.shape == (1, 3, 28, 28) and pixels.min() >= 0  # rescaled, not normalised
    assert torch.equal(frames[0, 0], pixels[0])  # images and frames still get the same pipeline


def test_num_multimodal_tokens_for_serving_engines(qwen, image):
    processor, config = qwen
    data = processor._get_num_multimodal_tokens(
        image_sizes=[(380, 570), (10, 20)], video_sizes=[(146, 360, 640), (16, 56, 56), (5, 90, 90)]
    )
    expected = config.get_num_visual_tokens()
    assert data.num_image_tokens == [expected, expected]
    # (frames, height, width) of the frames to process: cut to max_frames (32), padded to num_frames (16)
    assert data.num_video_tokens == [config.get_num_visual_tokens(32), expected, expected]
    with pytest.raises(ValueError, match=r"\(num_frames, height, width\) per video"):
        processor._get_num_multimodal_tokens(video_sizes=[(360, 640)])
    inputs = processor(text="<image>", images=[image])
    assert count(inputs["input_ids"], processor.image_token_id) == expected


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    frames=st.integers(1, 40),
    height=st.integers(1, 90),
    width=st.integers(1, 90),
    num_frames=st.sampled_from([2, 4, 8, 16]),
)
def test_any_video_array_expands_to_what_the_model_consumes(qwen, frames, height, width, num_frames):
    processor, config = qwen
    video = np.random.default_rng(frames).integers(0, 255, (frames, height, width, 3), dtype=np.uint8)
    inputs = processor(text="<video>", videos=[video], videos_kwargs={"num_frames": num_frames})
    clip = inputs["pixel_values_videos"]
    assert clip.shape[0] == 1 and clip.shape[2:] == (3, 56, 56)
    assert count(inputs["input_ids"], processor.video_token_id) == config.get_num_visual_tokens(clip.shape[1])
