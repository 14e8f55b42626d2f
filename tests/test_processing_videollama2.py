"""VideoLlama2Processor: placeholder expansion, chat templates, errors, save/load, on the real fixture tokenizers."""

import base64
import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from transformers import AutoImageProcessor, AutoProcessor, CLIPImageProcessorPil, SiglipImageProcessorPil
from videollama2_test_utils import audio_visual_processor

from videollama2_hf import (
    VideoLlama2Config,
    VideoLlama2FeatureExtractor,
    VideoLlama2ImageProcessor,
    VideoLlama2Processor,
    num_visual_tokens,
)
from videollama2_hf.audio_decoding_videollama2 import load_audio
from videollama2_hf.original_checkpoint import load_original_processor
from videollama2_hf.original_layout import convert_config, load_chat_template, load_original_tokenizer


def build_processor(fixtures_dir, variant):
    folder = fixtures_dir / variant
    tokenizer = load_original_tokenizer(folder / "original_checkpoint")
    original = json.loads((folder / "original_checkpoint" / "config.json").read_text())
    tower = json.loads((folder / "vision_tower" / "config.json").read_text())
    config = VideoLlama2Config(**convert_config(original, tower, tokenizer.image_token_id, tokenizer.video_token_id))
    return load_original_processor(folder / "original_checkpoint", vision_tower=folder / "vision_tower"), config


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
    if num_frames > frames and num_frames != processor.video_processor.num_frames:
        with pytest.raises(ValueError, match=f"num_frames={num_frames}`, but the video has only {frames} frames"):
            processor(text="<video>", videos=[video], videos_kwargs={"num_frames": num_frames})
        return
    inputs = processor(text="<video>", videos=[video], videos_kwargs={"num_frames": num_frames})
    clip = inputs["pixel_values_videos"]
    assert clip.shape[0] == 1 and clip.shape[2:] == (3, 56, 56)
    assert count(inputs["input_ids"], processor.video_token_id) == config.get_num_visual_tokens(clip.shape[1])


# --- the audio of VideoLLaMA2.1-AV ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audio_visual(fixtures_dir):
    return audio_visual_processor(fixtures_dir)


def chat(*items, question="What do you hear?"):
    return [{"role": "user", "content": [*items, {"type": "text", "text": question}]}]


def test_processors_without_feature_extractor_reject_audio(qwen, media_dir, tmp_path):
    processor = qwen[0]
    video, wav = str(media_dir / "sample_demo_1.mp4"), str(media_dir / "bird-twitter-car.wav")
    message = "This checkpoint has no audio encoder, so it cannot hear audio"
    # the sound of videos, which `transformers serve` asks every multimodal model for, is ignored: videos are seen
    seen = processor(text="<video>\nWhat?", videos=[video])
    not_heard = processor(text="<video>\nWhat?", videos=[video], load_audio_from_video=True)
    assert not_heard.keys() == seen.keys()
    assert torch.equal(not_heard["input_ids"], seen["input_ids"])
    with pytest.raises(ValueError, match=message):
        processor(text="What?", audio=[wav])
    with pytest.raises(ValueError, match=message):
        processor.apply_chat_template(chat({"type": "audio", "path": wav}), tokenize=True, return_dict=True)
    with pytest.raises(ValueError, match=message):
        processor._get_num_multimodal_tokens(audio_lengths=[16000])
    # and they save no audio settings, as before audio existed
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())
    assert "feature_extractor" not in saved and "audio_patch_size" not in saved
    assert VideoLlama2Processor.from_pretrained(tmp_path).feature_extractor is None


def test_audio_file_expands_to_its_tokens(audio_visual, media_dir):
    processor = audio_visual
    wav = media_dir / "bird-twitter-car.wav"
    from_path = processor(text="<audio>\nWhat?", audio=[str(wav)])
    from_waveform = processor(text="<audio>\nWhat?", audio=[load_audio(wav)], sampling_rate=16000)
    assert count(from_path["input_ids"], processor.audio_token_id) == 1496
    assert torch.equal(from_path["input_ids"], from_waveform["input_ids"])
    assert torch.equal(from_path["input_features"], from_waveform["input_features"])
    assert processor._get_num_multimodal_tokens(audio_lengths=[len(load_audio(wav))])["num_audio_tokens"] == [1496]
    with pytest.raises(ValueError, match="sampled at 44100 Hz but this feature extractor expects 16000"):
        processor(text="<audio>", audio=[np.zeros(44100)], sampling_rate=44100)


def test_chat_audio_items_and_sound_of_videos(audio_visual, media_dir):
    processor = audio_visual
    video, wav = str(media_dir / "sample_demo_1.mp4"), str(media_dir / "bird-twitter-car.wav")
    messages = chat({"type": "audio", "path": wav}, {"type": "video", "path": video})
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert "<|im_start|>user\n<audio>\n<video>\nWhat do you hear?<|im_end|>" in prompt
    heard = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, load_audio_from_video=True
    )
    ids = heard["input_ids"][0]
    # the wav's run, then the video's frames followed by its sound
    placeholders = torch.tensor([processor.audio_token_id, processor.video_token_id])
    runs = torch.unique_consecutive(ids[torch.isin(ids, placeholders)])
    assert runs.tolist() == [processor.audio_token_id, processor.video_token_id, processor.audio_token_id]
    assert count(ids, processor.audio_token_id) == 2 * 1496 and heard["input_features"].shape == (2, 2998, 128)
    silent = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    assert count(silent["input_ids"][0], processor.audio_token_id) == 1496
    assert torch.equal(silent["input_features"], heard["input_features"][:1])


def test_explicit_audio_item_after_a_video_marks_its_sound(audio_visual, media_dir, caplog):
    """The form transformers asks for (an empty audio item right after each video) and the implicit one give the same
    prompt, ids and features; neither logs transformers' deprecation warning."""
    processor = audio_visual
    video = {"type": "video", "path": str(media_dir / "sample_demo_1.mp4")}
    explicit, implicit = chat(video, {"type": "audio"}), chat(video)
    prompts = [
        processor.apply_chat_template(m, add_generation_prompt=True, tokenize=False) for m in (explicit, implicit)
    ]
    assert prompts[0] == prompts[1] and "<audio>" not in prompts[0]
    with caplog.at_level("WARNING"):
        heard = [
            processor.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=True, load_audio_from_video=True
            )
            for messages in (explicit, implicit)
        ]
    assert "audio` entry" not in caplog.text
    assert torch.equal(heard[0]["input_ids"], heard[1]["input_ids"])
    assert torch.equal(heard[0]["input_features"], heard[1]["input_features"])
    assert count(heard[0]["input_ids"], processor.audio_token_id) == 1496
    # what a user writes after rendering the prompt: the processor on the text gives the same
    from_text = processor(text=prompts[0], videos=[video["path"]], load_audio_from_video=True)
    assert torch.equal(from_text["input_ids"], heard[0]["input_ids"])
    with pytest.raises(ValueError, match=r'An \{"type": "audio"\} item needs its audio'):  # no video before it
        processor.apply_chat_template(
            chat({"type": "audio"}, video), tokenize=True, return_dict=True, load_audio_from_video=True
        )


def test_empty_media_lists_mean_no_media(mistral, audio_visual):
    """What clients such as lmms-eval pass for a text-only question: `images=[]`, `videos=[]`, `audio=[]`."""
    processor = mistral[0]
    plain = processor(text="What?")
    for kwargs in ({"images": []}, {"videos": []}, {"images": [[]], "videos": [[]]}):
        inputs = processor(text="What?", **kwargs)
        assert set(inputs) == set(plain) and torch.equal(inputs["input_ids"], plain["input_ids"])
    heard = audio_visual(text="What?", audio=[], images=[], videos=[])
    assert "input_features" not in heard and "pixel_values" not in heard


@pytest.mark.parametrize("empty", [[], ()])
def test_empty_video_item_in_a_chat_is_a_clear_error(mistral, empty):
    messages = [{"role": "user", "content": [{"type": "video", "video": empty}, {"type": "text", "text": "What?"}]}]
    with pytest.raises(ValueError, match="holds no frame"):
        mistral[0].apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)


def test_sound_of_videos_errors(audio_visual, media_dir, fixtures_dir):
    processor = audio_visual
    silent_video = str(media_dir / "output_v_3V9tzjyr51I.mp4")
    with pytest.raises(ValueError, match="has no audio stream"):  # the original heard 30 s of zeros
        processor(text="<video>\nWhat?", videos=[silent_video], load_audio_from_video=True)
    frames = np.zeros((8, 32, 32, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="reads the sound of video files: pass each video as a path, URL or bytes"):
        processor(text="<video>\nWhat?", videos=[frames], load_audio_from_video=True)
    with pytest.raises(ValueError, match=r'An \{"type": "audio"\} item needs its audio'):
        processor.apply_chat_template(chat({"type": "audio"}), tokenize=True, return_dict=True)
    with pytest.raises(ValueError, match="needs a tokenizer with an <audio> token"):
        VideoLlama2Processor(
            processor.image_processor,
            processor.video_processor,
            load_original_tokenizer(fixtures_dir / "qwen2_siglip_av" / "original_checkpoint"),  # no audio=True
            feature_extractor=VideoLlama2FeatureExtractor(),
        )


def test_audio_visual_processor_save_and_reload(audio_visual, media_dir, tmp_path):
    audio_visual.save_pretrained(tmp_path)
    reloaded = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(reloaded.feature_extractor, VideoLlama2FeatureExtractor)
    assert reloaded.audio_token_id == audio_visual.audio_token_id and reloaded.audio_patch_size == 16
    assert "input_features" in reloaded.model_input_names
    wav = str(media_dir / "bird-twitter-car.wav")
    first, second = audio_visual(text="<audio>", audio=[wav]), reloaded(text="<audio>", audio=[wav])
    assert torch.equal(first["input_ids"], second["input_ids"])
    assert torch.equal(first["input_features"], second["input_features"])


def test_chat_media_as_data_uris_and_file_urls(audio_visual, media_dir):
    """What OpenAI-style clients send: each medium inline as a base64 data: URI, or as a file:// URL; the same
    inputs as their paths give, through the chat template and the processor alike."""
    processor = audio_visual
    paths = {
        "image": media_dir / "extreme_ironing.jpg",
        "video": media_dir / "sample_demo_3.mp4",
        "audio": media_dir / "bird-twitter-car.wav",
    }
    types = {"image": "image/jpeg", "video": "video/mp4", "audio": "audio/wav"}

    def inputs(source_of):
        items = [{"type": kind, "url": source_of(kind)} for kind in paths]
        return processor.apply_chat_template(chat(*items), tokenize=True, return_dict=True, add_generation_prompt=True)

    expected = inputs(lambda kind: str(paths[kind]))
    for source_of in (
        lambda kind: f"data:{types[kind]};base64,{base64.b64encode(paths[kind].read_bytes()).decode()}",
        lambda kind: paths[kind].as_uri(),
    ):
        given = inputs(source_of)
        assert given.keys() == expected.keys()
        for key in expected:
            assert torch.equal(given[key], expected[key]), key
    direct = processor(
        text="<image><video><audio>", images=[paths["image"].as_uri()], videos=[paths["video"].as_uri()],
        audio=[paths["audio"].as_uri()],
    )  # fmt: skip
    assert torch.equal(direct["pixel_values"], expected["pixel_values"])
