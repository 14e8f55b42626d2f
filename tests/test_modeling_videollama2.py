"""Behaviour of the model on tiny random configs: shapes, the shared token formula, errors, generation, training."""

import copy

import pytest
import torch
from huggingface_hub.errors import StrictDataclassError
from transformers import AutoConfig, AutoModelForImageTextToText
from videollama2_test_utils import AUDIO_ID, IMAGE_ID, PAD_ID, TINY_AUDIO_FRAMES, VIDEO_ID, VOCAB, tiny_config

from videollama2_hf import (
    VideoLlama2AudioEncoderConfig,
    VideoLlama2Config,
    VideoLlama2FeatureExtractor,
    VideoLlama2ForConditionalGeneration,
    num_visual_tokens,
)


def build(config, seed=0):
    torch.manual_seed(seed)
    return VideoLlama2ForConditionalGeneration(config).eval()


@pytest.fixture(scope="module")
def model():
    return build(tiny_config())


def prompt(model, modality, text_before=(5, 6, 7), text_after=(8, 9), num_frames=None):
    config = model.config
    count = config.get_num_visual_tokens(num_frames)
    token = VIDEO_ID if modality == "video" else IMAGE_ID
    return [1, *text_before, *([token] * count), *text_after]


def pixels(batch, frames=None, seed=1):
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, 3, 56, 56) if frames is None else (batch, frames, 3, 56, 56)
    return torch.randn(shape, generator=generator)


@pytest.mark.parametrize(
    "projector_type,vision,frames",
    [
        ("stc_connector", "clip_vision_model", 4),
        ("stc_connector", "clip_vision_model", 5),
        ("stc_connector_v35", "siglip_vision_model", 4),
        ("stc_connector_v35", "siglip_vision_model", 3),
        ("stp_connector", "clip_vision_model", 4),
        ("mlp", "clip_vision_model", 4),  # the original's mlp2x_gelu
        ("mlp", "siglip_vision_model", 2),
    ],
)
def test_token_formula_matches_feature_shape(projector_type, vision, frames):
    model = build(tiny_config(projector_type, vision=vision, num_frames=frames))
    with torch.no_grad():
        video = model.get_video_features(pixels(2, frames)).pooler_output
        image = model.get_image_features(pixels(1)).pooler_output
    expected = num_visual_tokens(projector_type, 4, frames)
    assert expected == model.config.get_num_visual_tokens()
    assert video.shape == (2, expected, 32)
    assert image.shape == (1, expected, 32)


def test_released_token_counts():
    clip = VideoLlama2Config()
    assert clip.get_num_visual_tokens(8) == 845
    assert clip.get_num_visual_tokens(16) == 1521
    siglip = VideoLlama2Config(
        vision_config={"model_type": "siglip_vision_model", "image_size": 384, "patch_size": 14, "hidden_size": 1152},
        text_config={"model_type": "qwen2"},
        projector_type="stc_connector_v35",
        vision_feature_select_strategy="full",
        num_frames=16,
    )
    assert siglip.get_num_visual_tokens() == 1352
    # VideoLLaMA2.1-7B-AV: 30 s of audio -> 2998 filterbank frames -> 187 x 8 BEATs patches
    assert VideoLlama2AudioEncoderConfig().get_num_audio_tokens(VideoLlama2FeatureExtractor().num_frames) == 1496


def test_image_equals_video_of_repeated_frames(model):
    image = pixels(1)
    with torch.no_grad():
        from_image = model.get_image_features(image).pooler_output
        from_video = model.get_video_features(image[:, None].expand(-1, 4, -1, -1, -1)).pooler_output
    torch.testing.assert_close(from_image, from_video, atol=1e-6, rtol=0)


def test_config_round_trip_through_auto_config(tmp_path):
    config = tiny_config("stc_connector_v35", text="qwen2", vision="siglip_vision_model", num_frames=16)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, VideoLlama2Config)
    assert loaded.to_diff_dict() == config.to_diff_dict()
    assert loaded.get_num_visual_tokens() == config.get_num_visual_tokens()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"projector_type": "spatial_pool"}, "Unsupported projector_type"),
        ({"text": "gpt2"}, "Unsupported language model"),
        ({"vision": "vit"}, "Unsupported vision tower"),
    ],
)
def test_config_rejects_unsupported_architectures(kwargs, message):
    with pytest.raises((ValueError, StrictDataclassError), match=message):
        tiny_config(**kwargs)


def test_siglip_needs_full_strategy():
    with pytest.raises(StrictDataclassError, match="SigLIP has no CLS"):
        VideoLlama2Config(
            vision_config={"model_type": "siglip_vision_model"}, vision_feature_select_strategy="default"
        )


def test_v35_rejects_single_frame_video():
    model = build(tiny_config("stc_connector_v35", vision="siglip_vision_model", num_frames=2))
    with pytest.raises(ValueError, match="needs at least 2 frames"):
        model.config.get_num_visual_tokens(1)
    with pytest.raises(ValueError, match="at least 2 frames"):
        model.get_video_features(pixels(1, 1))


@pytest.mark.parametrize(
    "bad,message",
    [
        (torch.zeros(1, 4, 3, 28, 28), r"H = W = 56"),
        (torch.zeros(4, 3, 56, 56), r"\(num_videos, frames, 3, H, W\)"),
        (torch.zeros(1, 4, 1, 56, 56), r"H = W = 56"),
    ],
)
def test_wrong_pixel_shapes_raise_clear_errors(model, bad, message):
    with pytest.raises(ValueError, match=message):
        model.get_video_features(bad)


def test_placeholder_count_mismatch(model):
    ids = torch.tensor([prompt(model, "video")[:-5]])  # truncated inside the visual run
    with pytest.raises(ValueError, match="features and video tokens do not match"):
        model(input_ids=ids, pixel_values_videos=pixels(1, 4))
    ids = torch.tensor([prompt(model, "video")])
    with pytest.raises(ValueError, match="do not match"):  # two videos for one placeholder run
        model(input_ids=ids, pixel_values_videos=pixels(2, 4))


def test_generate_rejects_a_prompt_whose_media_were_forgotten(model):
    ids = torch.tensor([prompt(model, "video")])
    with pytest.raises(ValueError, match="<video> tokens but no `pixel_values_videos` were given to `generate`"):
        model.generate(input_ids=ids, max_new_tokens=1)
    both = torch.tensor([prompt(model, "video") + prompt(model, "image")])
    with pytest.raises(ValueError, match="<video> tokens but no `pixel_values_videos`"):  # only the image given
        model.generate(input_ids=both, pixel_values=pixels(1), max_new_tokens=1)
    with torch.no_grad():  # encoded media count as given
        encoded = model.get_video_features(pixels(1, 4))
        model.generate(input_ids=ids, mm_encoder_outputs={"video": encoded}, max_new_tokens=1)


def in_table_model():
    """Placeholder ids inside the embedding table, as in the released Qwen2 (VideoLLaMA2.1) checkpoints."""
    config = tiny_config()
    config.image_token_id, config.video_token_id = 10, 11
    return build(config)


def test_placeholder_ids_without_media_are_ordinary_tokens(model):
    """Text-only forwards (assisted decoding's draft steps, transformers' attention checks) see placeholder ids
    without features: ids past the embedding table are embedded as id 0, ids inside it as themselves."""
    ids = torch.tensor([prompt(model, "video") + prompt(model, "image")])
    as_pad = ids.masked_fill((ids == VIDEO_ID) | (ids == IMAGE_ID), PAD_ID)
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, model(input_ids=as_pad).logits, atol=0, rtol=0)
    in_table = in_table_model()
    ids = torch.tensor([[1, 10, 10, 11, 11, 5]])
    with torch.no_grad():
        embeds = in_table.get_input_embeddings()(ids)
        torch.testing.assert_close(in_table(input_ids=ids).logits, in_table(inputs_embeds=embeds).logits)


def test_inputs_embeds_find_placeholders_by_their_embedding():
    model = in_table_model()
    count = model.config.get_num_visual_tokens()
    ids = torch.tensor([[1, 5, 6, *([10] * count), 8, *([11] * count), 9]])
    media = {"pixel_values_videos": pixels(1, 4), "pixel_values": pixels(1, seed=2)}
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
        torch.testing.assert_close(
            model(inputs_embeds=embeds, **media).logits, model(input_ids=ids, **media).logits, atol=0, rtol=0
        )
        with pytest.raises(ValueError, match="Video features and video tokens do not match"):
            model(inputs_embeds=embeds[:, :-4], **media)


def test_generate_from_inputs_embeds_equals_input_ids():
    model = in_table_model()
    count = model.config.get_num_visual_tokens()
    ids = torch.tensor([[1, 5, 6, *([11] * count), 8, 9]])
    video = pixels(1, 4)
    kwargs = {"max_new_tokens": 6, "do_sample": False, "pad_token_id": PAD_ID}
    with torch.no_grad():
        from_ids = model.generate(input_ids=ids, pixel_values_videos=video, **kwargs)[:, ids.shape[1] :]
        embeds = model.get_input_embeddings()(ids)
        from_embeds = model.generate(inputs_embeds=embeds, pixel_values_videos=video, **kwargs)
    assert from_embeds.tolist() == from_ids.tolist()


def test_inputs_embeds_cannot_mark_placeholders_outside_the_embedding_table(model):
    count = model.config.get_num_visual_tokens()
    ids = torch.tensor([[1, 5, *([VIDEO_ID] * count), 8]])
    embeds = model.get_input_embeddings()(ids.clamp(max=VOCAB - 1))
    with pytest.raises(ValueError, match=r"<video> id 97 lies outside the embedding table \(96 rows\)"):
        model(inputs_embeds=embeds, pixel_values_videos=pixels(1, 4))


def test_forward_loss_and_logits_to_keep(model):
    ids = torch.tensor([prompt(model, "video")])
    with torch.no_grad():
        full = model(input_ids=ids, pixel_values_videos=pixels(1, 4), labels=ids)
        last = model(input_ids=ids, pixel_values_videos=pixels(1, 4), logits_to_keep=1)
    assert full.logits.shape == (1, ids.shape[1], VOCAB)
    torch.testing.assert_close(last.logits[:, -1], full.logits[:, -1])
    # visual positions never count: the loss equals the text-only loss computed by hand
    targets = ids.clone()
    targets[(ids == VIDEO_ID)] = -100
    expected = torch.nn.functional.cross_entropy(full.logits[0, :-1], targets[0, 1:], ignore_index=-100)
    torch.testing.assert_close(full.loss, expected)


def test_mm_encoder_outputs_equal_raw_pixels(model):
    ids = torch.tensor([prompt(model, "video")])
    video = pixels(1, 4)
    with torch.no_grad():
        raw = model(input_ids=ids, pixel_values_videos=video).logits
        encoded = model.get_video_features(video)
        reused = model(input_ids=ids, mm_encoder_outputs={"video": encoded}).logits
    torch.testing.assert_close(raw, reused, atol=0, rtol=0)


def left_padded_batch(model):
    """Video row, image row and a text-only row, left-padded."""
    rows = [prompt(model, "video"), prompt(model, "image", text_after=(10, 11, 12, 13)), [1, 20, 21, 22]]
    width = max(map(len, rows))
    ids = torch.tensor([[PAD_ID] * (width - len(row)) + row for row in rows])
    mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
    return {"input_ids": ids, "attention_mask": mask, "pixel_values_videos": pixels(1, 4), "pixel_values": pixels(1)}


def single(model, row, **generate_kwargs):
    batch = left_padded_batch(model)
    keep = batch["attention_mask"][row].bool()
    inputs = {"input_ids": batch["input_ids"][row : row + 1, keep], "attention_mask": None}
    if row == 0:
        inputs["pixel_values_videos"] = batch["pixel_values_videos"]
    if row == 1:
        inputs["pixel_values"] = batch["pixel_values"]
    inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
    with torch.no_grad():
        return model.generate(**inputs, **generate_kwargs)[0, inputs["input_ids"].shape[1] :]


def test_batched_left_padded_generation_mixes_video_image_and_text(model):
    batch = left_padded_batch(model)
    with torch.no_grad():
        generated = model.generate(**batch, max_new_tokens=6, do_sample=False, pad_token_id=PAD_ID)
    new = generated[:, batch["input_ids"].shape[1] :]
    for row in range(3):
        assert new[row].tolist() == single(model, row, max_new_tokens=6, do_sample=False).tolist()


def test_kv_cache_equivalence(model):
    batch = left_padded_batch(model)
    with torch.no_grad():
        cached = model.generate(**batch, max_new_tokens=5, do_sample=False, use_cache=True)
        uncached = model.generate(**batch, max_new_tokens=5, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


def test_sampling_is_seeded(model):
    batch = left_padded_batch(model)
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        with torch.no_grad():
            runs.append(model.generate(**batch, max_new_tokens=5, do_sample=True, top_k=0, temperature=1.5))
    assert torch.equal(runs[0], runs[1])


def test_beam_search_with_num_return_sequences(model):
    batch = left_padded_batch(model)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=4, num_beams=3, num_return_sequences=2, do_sample=False)
    assert out.shape[0] == 6
    with torch.no_grad():
        greedy_like = model.generate(**batch, max_new_tokens=4, num_beams=1, do_sample=False)
    assert greedy_like.shape[0] == 3


def test_eager_and_sdpa_agree():
    config = tiny_config()
    torch.manual_seed(0)
    eager = VideoLlama2ForConditionalGeneration._from_config(copy.deepcopy(config), attn_implementation="eager")
    sdpa = VideoLlama2ForConditionalGeneration._from_config(copy.deepcopy(config), attn_implementation="sdpa")
    eager.eval(), sdpa.eval()
    sdpa.load_state_dict(eager.state_dict())
    assert eager.model.language_model.config._attn_implementation == "eager"
    assert eager.model.vision_tower.config._attn_implementation == "eager"
    assert sdpa.model.vision_tower.config._attn_implementation == "sdpa"
    assert sdpa.model.language_model.config._attn_implementation == "sdpa"
    batch = left_padded_batch(eager)
    with torch.no_grad():
        eager_logits, sdpa_logits = eager(**batch).logits, sdpa(**batch).logits
    attended = batch["attention_mask"].bool()  # padded positions attend to nothing: undefined in both
    torch.testing.assert_close(eager_logits[attended], sdpa_logits[attended], atol=1e-5, rtol=1e-5)


def test_gradient_checkpointing_training_step():
    model = build(tiny_config()).train()
    model.activation_checkpointing_enable()
    batch = left_padded_batch(model)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    loss = model(**batch, labels=labels).loss
    loss.backward()
    projector_grad = model.model.multi_modal_projector.s1.b1.conv1.conv.weight.grad
    assert torch.isfinite(loss) and projector_grad is not None and projector_grad.abs().sum() > 0
    assert model.model.language_model.gradient_checkpointing


def test_mixtral_and_qwen2_backbones_generate():
    for text in ("mixtral", "qwen2", "llama"):
        model = build(tiny_config(text=text))
        ids = torch.tensor([prompt(model, "image")])
        with torch.no_grad():
            out = model.generate(input_ids=ids, pixel_values=pixels(1), max_new_tokens=3, do_sample=False)
        assert out.shape == (1, ids.shape[1] + 3)


def test_save_and_reload_through_auto_class(model, tmp_path):
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, VideoLlama2ForConditionalGeneration)
    ids = torch.tensor([prompt(model, "video")])
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(input_ids=ids, pixel_values_videos=pixels(1, 4)).logits,
            model(input_ids=ids, pixel_values_videos=pixels(1, 4)).logits,
            atol=0,
            rtol=0,
        )


# --- VideoLLaMA2.1-AV: the audio tower and its projector ------------------------------------------------------------


@pytest.fixture(scope="module")
def av_model():
    return build(tiny_config("stc_connector_v35", text="qwen2", vision="siglip_vision_model", audio=True))


def audio_prompt(model, with_video: bool, text_after=(8, 9)):
    """`<video>` followed by its sound, as the processor expands an audio-visual clip, or an audio file alone."""
    video = [VIDEO_ID] * model.config.get_num_visual_tokens() if with_video else []
    audio = [AUDIO_ID] * model.config.audio_config.get_num_audio_tokens(TINY_AUDIO_FRAMES)
    return [1, 5, 6, *video, *audio, *text_after]


def filterbanks(batch, seed=3):
    return torch.randn(batch, TINY_AUDIO_FRAMES, 32, generator=torch.Generator().manual_seed(seed)) * 5


def test_without_audio_config_nothing_changes(model):
    """The default config builds no audio parts: the same modules and tensor names as before audio existed."""
    assert VideoLlama2Config().audio_config is None
    assert not hasattr(model.model, "audio_tower") and not hasattr(model.model, "audio_projector")
    assert not any("audio" in name for name in model.state_dict())
    with pytest.raises(ValueError, match="no audio tower .* only audio-visual checkpoints"):
        model(input_ids=torch.tensor([[1, 5]]), input_features=filterbanks(1))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"audio_token_id": None}, "needs `audio_token_id`"),
        ({"audio_token_id": VIDEO_ID}, "must differ from the image and video token ids"),
        ({"audio_projector_depth": 0}, "audio_projector_depth must be at least 1"),
        ({"projector_mlp_depth": 0}, "projector_mlp_depth must be at least 1"),
        ({"projector_type": "mlp2x_gelu"}, "Unsupported projector_type 'mlp2x_gelu'"),
    ],
)
def test_audio_config_errors(kwargs, message):
    with pytest.raises(StrictDataclassError, match=message):
        tiny_config(audio=True, **kwargs)


@pytest.mark.parametrize("depth", [1, 2, 3])  # the original's linear, mlp2x_gelu, mlp3x_gelu
def test_audio_projector_depth(depth):
    model = build(tiny_config(audio=True, audio_projector_depth=depth))
    layers = [name for name, _ in model.model.audio_projector.named_children() if name.startswith("linear")]
    assert layers == [f"linear_{index}" for index in range(1, depth + 1)]
    with torch.no_grad():
        encoded = model.get_audio_features(filterbanks(2))
    tower_width, llm_width = model.config.audio_config.hidden_size, model.config.text_config.hidden_size
    assert encoded.last_hidden_state.shape == (2, 6, tower_width) and encoded.pooler_output.shape == (2, 6, llm_width)


def test_audio_config_round_trip_through_auto_config(tmp_path):
    config = tiny_config(audio=True)
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded.audio_config, VideoLlama2AudioEncoderConfig)
    assert loaded.to_diff_dict() == config.to_diff_dict()


def test_audio_features_fill_the_audio_positions(av_model):
    """The projected features of each clip replace its run of <audio> embeddings, in order; the other positions keep
    their token embeddings."""
    ids = torch.tensor([audio_prompt(av_model, with_video=True)])
    media = {"pixel_values_videos": pixels(1, 4), "input_features": filterbanks(1)}
    with torch.no_grad():
        hidden = av_model(input_ids=ids, output_hidden_states=True, **media).hidden_states[0][0]
        audio = av_model.get_audio_features(media["input_features"]).pooler_output[0]
        video = av_model.get_video_features(media["pixel_values_videos"]).pooler_output[0]
    torch.testing.assert_close(hidden[ids[0] == AUDIO_ID], audio, atol=0, rtol=0)
    torch.testing.assert_close(hidden[ids[0] == VIDEO_ID], video, atol=0, rtol=0)


def test_audio_errors(av_model):
    ids = torch.tensor([audio_prompt(av_model, with_video=False)])
    with pytest.raises(ValueError, match="Audio features and audio tokens do not match: the prompt holds 6"):
        av_model(input_ids=ids, input_features=filterbanks(2))
    with pytest.raises(ValueError, match="<audio> tokens but no `input_features` were given to `generate`"):
        av_model.generate(input_ids=ids, max_new_tokens=1)
    with pytest.raises(ValueError, match=r"must be \(batch, frames, 32\) filterbanks"):
        av_model(input_ids=ids, input_features=torch.zeros(1, 48, 128))
    with (
        torch.no_grad(),
        pytest.raises(ValueError, match=r"both raw audio inputs and `mm_encoder_outputs\['audio'\]`"),
    ):
        encoded = av_model.get_audio_features(filterbanks(1))
        av_model(input_ids=ids, input_features=filterbanks(1), mm_encoder_outputs={"audio": encoded})


def test_encoded_audio_beside_raw_video_pixels(av_model):
    """Encoder outputs of one modality leave the raw inputs of the others welcome."""
    ids = torch.tensor([audio_prompt(av_model, with_video=True)])
    video, features = pixels(1, 4), filterbanks(1)
    with torch.no_grad():
        encoded = {"audio": av_model.get_audio_features(features)}
        mixed = av_model(input_ids=ids, pixel_values_videos=video, mm_encoder_outputs=encoded).logits
        raw = av_model(input_ids=ids, pixel_values_videos=video, input_features=features).logits
    assert torch.equal(mixed, raw)


def test_audio_positions_never_count_in_the_loss_and_encoded_audio_equals_raw(av_model):
    ids = torch.tensor([audio_prompt(av_model, with_video=False)])
    features = filterbanks(1)
    with torch.no_grad():
        full = av_model(input_ids=ids, input_features=features, labels=ids)
        encoded = av_model.get_audio_features(features)
        reused = av_model(input_ids=ids, mm_encoder_outputs={"audio": encoded})
    targets = ids.masked_fill(ids == AUDIO_ID, -100)
    expected = torch.nn.functional.cross_entropy(full.logits[0, :-1], targets[0, 1:], ignore_index=-100)
    torch.testing.assert_close(full.loss, expected)
    torch.testing.assert_close(reused.logits, full.logits, atol=0, rtol=0)
    assert full.audio_outputs.pooler_output.shape == (1, 6, 32)


def left_padded_audio_batch(model):
    """An audio-visual row (video, then its sound), an audio-only row and a text-only row, left-padded."""
    rows = [audio_prompt(model, True), audio_prompt(model, False, text_after=(10, 11, 12)), [1, 20, 21]]
    width = max(map(len, rows))
    return {
        "input_ids": torch.tensor([[PAD_ID] * (width - len(row)) + row for row in rows]),
        "attention_mask": torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows]),
        "pixel_values_videos": pixels(1, 4),
        "input_features": filterbanks(2),
    }


def test_left_padded_batch_of_audio_visual_and_audio_rows(av_model):
    """Each row of the batch generates what it generates alone (features are consumed in prompt order)."""
    batch = left_padded_audio_batch(av_model)
    kwargs = {"max_new_tokens": 5, "do_sample": False, "pad_token_id": PAD_ID}
    with torch.no_grad():
        generated = av_model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1] :]
        for row, media in enumerate(
            [
                {"pixel_values_videos": batch["pixel_values_videos"], "input_features": batch["input_features"][:1]},
                {"input_features": batch["input_features"][1:]},
                {},
            ]
        ):
            ids = batch["input_ids"][row : row + 1, batch["attention_mask"][row].bool()]
            alone = av_model.generate(input_ids=ids, **media, **kwargs)[0, ids.shape[1] :].tolist()
            assert generated[row].tolist() == alone + [PAD_ID] * (len(generated[row]) - len(alone))  # after EOS


def test_audio_placeholders_found_by_their_embedding():
    """With the placeholder ids inside the embedding table (as in the released Qwen2 checkpoints), `inputs_embeds`
    mark the <audio> positions too, and generation from them equals generation from ids."""
    config = tiny_config(audio=True, audio_token_id=12)
    config.image_token_id, config.video_token_id = 10, 11
    model = build(config)
    ids = torch.tensor([[1, 5, *([12] * 6), 8, 9]])
    kwargs = {"input_features": filterbanks(1), "max_new_tokens": 4, "do_sample": False, "pad_token_id": PAD_ID}
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
        forward_kwargs = {"input_features": kwargs["input_features"]}
        torch.testing.assert_close(
            model(inputs_embeds=embeds, **forward_kwargs).logits, model(input_ids=ids, **forward_kwargs).logits
        )
        from_ids = model.generate(input_ids=ids, **kwargs)[:, ids.shape[1] :]
        assert model.generate(inputs_embeds=embeds, **kwargs).tolist() == from_ids.tolist()


def test_audio_visual_eager_and_sdpa_agree():
    config = tiny_config("stc_connector_v35", text="qwen2", vision="siglip_vision_model", audio=True)
    torch.manual_seed(0)
    eager = VideoLlama2ForConditionalGeneration._from_config(copy.deepcopy(config), attn_implementation="eager")
    sdpa = VideoLlama2ForConditionalGeneration._from_config(copy.deepcopy(config), attn_implementation="sdpa")
    sdpa.load_state_dict(eager.state_dict())
    assert eager.model.audio_tower.config._attn_implementation == "eager"
    assert sdpa.model.audio_tower.config._attn_implementation == "sdpa"
    batch = left_padded_audio_batch(eager)
    with torch.no_grad():
        eager_logits, sdpa_logits = eager.eval()(**batch).logits, sdpa.eval()(**batch).logits
    attended = batch["attention_mask"].bool()
    torch.testing.assert_close(eager_logits[attended], sdpa_logits[attended], atol=1e-5, rtol=1e-5)


def test_audio_visual_save_reload_and_training_step(av_model, tmp_path):
    av_model.save_pretrained(tmp_path)
    loaded = AutoModelForImageTextToText.from_pretrained(tmp_path).eval()
    batch = left_padded_audio_batch(av_model)
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch).logits, av_model(**batch).logits, atol=0, rtol=0)
    loaded.train()
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    loaded(**batch, labels=labels).loss.backward()
    assert loaded.model.audio_projector.linear_1.weight.grad.abs().sum() > 0
    assert loaded.model.audio_tower.post_extract_proj.weight.grad.abs().sum() > 0
