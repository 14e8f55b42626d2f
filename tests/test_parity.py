"""Parity with the original VideoLLaMA2 implementation on every fixture variant.

Each variant's original-layout checkpoint is loaded into our classes through the converter's key-mapping table,
its media go through our processor, and every stage is compared with the tensors the original produced:
frame indices -> pixels -> prompt -> input ids -> vision features -> connector output -> merged embeddings ->
hidden states -> logits -> loss -> greedy tokens. Tolerances are the fixtures README's (fp32).
"""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import GenerationConfig, RepetitionPenaltyLogitsProcessor
from videollama2_test_utils import (
    FIXTURE_VARIANTS,
    assert_close,
    assert_logits_close,
    expanded_ids,
    first_low_margin_step,
)

from videollama2_hf import VideoLlama2Config, VideoLlama2ForConditionalGeneration
from videollama2_hf.original_checkpoint import load_original_processor
from videollama2_hf.original_layout import ORIGINAL_TO_HF_KEY_PATTERNS, convert_config, load_original_tokenizer


class Variant:
    """Everything one fixture variant needs, built once per variant."""

    def __init__(self, fixtures_dir, media_dir, name):
        self.dir = fixtures_dir / name
        self._processed = {}
        self.media_dir = media_dir
        checkpoint = self.dir / "original_checkpoint"
        self.reference = load_file(self.dir / "reference.safetensors")
        self.meta = json.loads((self.dir / "reference.json").read_text())
        original_config = json.loads((checkpoint / "config.json").read_text())
        vision_tower = json.loads((self.dir / "vision_tower" / "config.json").read_text())

        tokenizer = load_original_tokenizer(checkpoint)
        self.config = VideoLlama2Config(
            **convert_config(original_config, vision_tower, tokenizer.image_token_id, tokenizer.video_token_id)
        )
        self.processor = load_original_processor(checkpoint, vision_tower=self.dir / "vision_tower")
        self.model = VideoLlama2ForConditionalGeneration.from_pretrained(
            checkpoint, config=self.config, key_mapping=dict(ORIGINAL_TO_HF_KEY_PATTERNS), dtype=torch.float32
        ).eval()
        original_generation = json.loads((checkpoint / "generation_config.json").read_text())
        original_generation.pop("transformers_version", None)
        self.generation_config = GenerationConfig(
            **{**original_generation, "do_sample": False, "max_new_tokens": self.meta["max_new_tokens"]},
        )
        self.generation_config.pad_token_id = self.meta["cases"]["video"]["generate_kwargs"]["pad_token_id"]

    def case(self, name):
        return self.meta["cases"][name]

    def expanded_ids(self, name):
        token_id = self.config.video_token_id if name == "video" else self.config.image_token_id
        return expanded_ids(self.case(name), name, token_id)

    def media_kwargs(self, name):
        path = str(self.media_dir / self.case(name)["media_file"])
        if name == "video":
            return {"videos": [path], "return_metadata": True}
        from PIL import Image

        return {"images": [Image.open(path)]}

    def processed(self, name):
        """The processor's output for the case's prompt and media, computed (and decoded) once per variant."""
        if name not in self._processed:
            # the prompt already holds the template's BOS, as the original's did
            prompt = self.case(name)["prompt"]
            self._processed[name] = self.processor(text=prompt, add_special_tokens=False, **self.media_kwargs(name))
        return self._processed[name]

    def chat(self, name):
        """The fixture's question as a transformers chat message, media first as the original prompt has it."""
        case = self.case(name)
        question = case["instruct"]
        return [
            {
                "role": "user",
                "content": [
                    {"type": name, "path": str(self.media_dir / case["media_file"])},
                    {"type": "text", "text": question},
                ],
            }
        ]


@pytest.fixture(scope="module", params=FIXTURE_VARIANTS)
def variant(request, fixtures_dir, media_dir):
    return Variant(fixtures_dir, media_dir, request.param)


def test_num_visual_tokens_match_fixture(variant):
    for name in ("video", "image"):
        assert variant.config.get_num_visual_tokens() == variant.case(name)["num_visual_tokens"]


def test_frame_indices_and_pixels(variant):
    video = variant.processed("video")
    indices = torch.as_tensor(video["video_metadata"][0].frames_indices)
    assert indices.tolist() == variant.reference["video.frame_indices"].tolist()
    assert indices.tolist() == variant.case("video")["sampled_frame_indices"]
    assert_close(video["pixel_values_videos"][0], variant.reference["video.pixel_values"], atol=1e-6, what="video")
    image = variant.processed("image")
    assert_close(image["pixel_values"], variant.reference["image.pixel_values"], atol=1e-6, what="image")


@pytest.mark.parametrize("name", ["video", "image"])
def test_prompt_and_input_ids(variant, name):
    case = variant.case(name)
    # the original's own messages (string content, explicit system message for Mistral)
    prompt = variant.processor.apply_chat_template(case["messages"], tokenize=False, add_generation_prompt=True)
    assert prompt == case["prompt"]
    # the transformers way: content items, no system message (the template adds the original default)
    assert (
        variant.processor.apply_chat_template(variant.chat(name), tokenize=False, add_generation_prompt=True)
        == case["prompt"]
    )
    inputs = variant.processed(name)
    assert inputs["input_ids"][0].tolist() == variant.expanded_ids(name)
    assert inputs["attention_mask"].all()


@pytest.mark.parametrize("name", ["video", "image"])
def test_forward_matches_reference(variant, name):
    ref = variant.reference
    model = variant.model
    ids = torch.tensor([variant.expanded_ids(name)])
    pixels = (
        {"pixel_values_videos": ref["video.pixel_values"][None]}
        if name == "video"
        else {"pixel_values": ref["image.pixel_values"]}
    )
    with torch.no_grad():
        encoder = model.get_video_features if name == "video" else model.get_image_features
        encoded = encoder(*pixels.values(), output_hidden_states=True)
        features = encoded.hidden_states[model.config.vision_feature_layer]
        if model.config.vision_feature_select_strategy == "default":
            features = features[:, 1:]
        reference_features = ref[f"{name}.vision_features"]
        # images run the tower once; the original ran it on num_frames identical copies
        assert_close(features, reference_features[: features.shape[0]], what="vision features")
        assert_close(encoded.pooler_output, ref[f"{name}.mm_features"], what="connector output")
        outputs = model(input_ids=ids, labels=ids, output_hidden_states=True, **pixels)
    hidden_states = torch.stack(outputs.hidden_states)
    assert_close(hidden_states[0], ref[f"{name}.inputs_embeds"], what="merged embeddings")
    assert_close(hidden_states, ref[f"{name}.hidden_states"], what="hidden states")
    logits = outputs.logits
    assert_logits_close(logits[:, -1], ref[f"{name}.logits_last"], what="last logits")
    assert_logits_close(logits.logsumexp(-1), ref[f"{name}.logits_lse"], what="logsumexp")
    assert_logits_close(logits[..., ref[f"{name}.logits_sel_ids"]], ref[f"{name}.logits_sel"], what="selected logits")
    assert torch.equal(logits.argmax(-1), ref[f"{name}.logits_argmax"])
    assert_logits_close(outputs.loss, ref[f"{name}.loss"], what="loss")


@pytest.mark.parametrize("name", ["video", "image"])
def test_greedy_generation(variant, name):
    case = variant.case(name)
    inputs = {key: value for key, value in variant.processed(name).items() if key != "video_metadata"}
    with torch.no_grad():
        generated = variant.model.generate(**inputs, generation_config=variant.generation_config)
    new_tokens = generated[0, inputs["input_ids"].shape[1] :].tolist()
    exact = first_low_margin_step(case["generate_step_margins"])
    assert new_tokens[:exact] == case["generated_ids"][:exact]
    if exact == len(case["generated_ids"]):
        assert variant.processor.post_process_image_text_to_text(generated[:, inputs["input_ids"].shape[1] :]) == [
            case["generated_text"]
        ]


@pytest.mark.parametrize("name", ["video", "image"])
def test_teacher_forced_scores(variant, name):
    """Past any near-tie, feed the original's tokens and compare its top-5 processed scores at every step."""
    case = variant.case(name)
    ref = variant.reference
    prompt = variant.expanded_ids(name)
    reference_ids = case["generated_ids"]
    ids = torch.tensor([prompt + reference_ids[:-1]])
    pixels = (
        {"pixel_values_videos": ref["video.pixel_values"][None]}
        if name == "video"
        else {"pixel_values": ref["image.pixel_values"]}
    )
    with torch.no_grad():
        logits = variant.model(input_ids=ids, **pixels).logits[0, len(prompt) - 1 :]
    penalty = variant.generation_config.repetition_penalty
    for step, step_logits in enumerate(logits):
        scores = step_logits[None].clone()
        if penalty and penalty != 1.0:
            scores = RepetitionPenaltyLogitsProcessor(penalty)(ids[:, : len(prompt) + step], scores)
        top_scores, top_ids = scores[0].topk(5)
        assert_logits_close(top_scores, ref[f"{name}.generate_top5_scores"][step], what=f"step {step} top-5 scores")
        assert top_ids[0].item() == reference_ids[step]


def test_batch_forward_right_padded(variant):
    """The original's batch case (right padding, video + image rows, labels) gives the same tensors."""
    ref = variant.reference
    processor = variant.processor
    processor.tokenizer.padding_side = "right"
    try:
        inputs = processor(
            text=[variant.case("video")["prompt"], variant.case("image")["prompt"]],
            videos=[str(variant.media_dir / variant.case("video")["media_file"])],
            images=variant.media_kwargs("image")["images"],
            padding=True,
            add_special_tokens=False,
        )
    finally:
        processor.tokenizer.padding_side = "left"
    mask = ref["batch.merged_attention_mask"].bool()
    assert torch.equal(inputs["attention_mask"].bool(), mask)
    labels = inputs["input_ids"].masked_fill(~mask, -100)
    with torch.no_grad():
        outputs = variant.model(**inputs, labels=labels, output_hidden_states=True)
    ids = inputs["input_ids"]
    is_placeholder = (ids == variant.config.image_token_id) | (ids == variant.config.video_token_id)
    assert torch.equal(labels.masked_fill(is_placeholder, -100), ref["batch.merged_labels"])
    assert_close(outputs.video_outputs.pooler_output, ref["batch.mm_features"][:1], what="video features")
    assert_close(outputs.image_outputs.pooler_output, ref["batch.mm_features"][1:], what="image features")
    hidden_states = torch.stack(outputs.hidden_states)
    assert_close(hidden_states[:, mask], ref["batch.hidden_states"][:, mask], what="hidden states")
    assert_logits_close(outputs.logits.logsumexp(-1)[mask], ref["batch.logits_lse"][mask], what="logsumexp")
    assert_logits_close(outputs.loss, ref["batch.loss"], what="loss")


def test_batch_generation_left_padded(variant):
    """Left padding (what the original cannot do) gives each row its single-sample greedy answer."""
    inputs = variant.processor(
        text=[variant.case("video")["prompt"], variant.case("image")["prompt"]],
        videos=[str(variant.media_dir / variant.case("video")["media_file"])],
        images=variant.media_kwargs("image")["images"],
        padding=True,
        add_special_tokens=False,
    )
    assert inputs["attention_mask"][:, 0].tolist() != inputs["attention_mask"][:, -1].tolist()  # really padded
    with torch.no_grad():
        generated = variant.model.generate(**inputs, generation_config=variant.generation_config)
    new_tokens = generated[:, inputs["input_ids"].shape[1] :]
    for row, name in enumerate(["video", "image"]):
        case = variant.case(name)
        exact = first_low_margin_step(case["generate_step_margins"])
        assert new_tokens[row, :exact].tolist() == case["generated_ids"][:exact], name
