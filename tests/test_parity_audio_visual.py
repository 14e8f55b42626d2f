"""Parity with the original audio-visual branch (VideoLLaMA2.1-7B-AV) on the `qwen2_siglip_av` fixture.

Its original-layout checkpoint (SigLIP, STC v35 connector, BEATs, audio projector, Qwen2) is loaded through the
release's key table, its media go through our processor, and every stage is compared with the original's tensors for
the three cases: `av` (a video with its sound: `<video>` -> [video tokens ; audio tokens]), `audio` (a wav file) and
`video` (the same video, no sound). Model stages start from the stored processor outputs (filterbank, pixels), so a
different audio decoder cannot hide a model difference; the processor's own outputs are compared separately.
Tolerances are the fixtures README's (fp32).
"""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, GenerationConfig, RepetitionPenaltyLogitsProcessor
from videollama2_test_utils import (
    AV_VARIANT,
    MARGIN_FOR_EXACT_IDS,
    assert_close,
    assert_logits_close,
    audio_visual_model,
    audio_visual_processor,
    case_media,
    expanded_audio_visual_ids,
    first_low_margin_step,
    original_folder,
    stored_media,
)

from videollama2_hf.audio_decoding_videollama2 import clip_sample_ranges
from videollama2_hf.original_checkpoint import load_original_processor


CASES = ["av", "audio", "video"]
# The original's bfloat16 filterbank, recomputed: a few values round to the other bfloat16 neighbour (rounding ties,
# MKL's last bits; for `av` also the 3 PCM samples PyAV's resampler rounds the other way, see the decoding tests).
MAX_FBANK_ULP_FLIPS = 64


class AudioVisual:
    """The fixture, its model, processor and generation settings, built once."""

    def __init__(self, fixtures_dir, media_dir):
        folder = fixtures_dir / AV_VARIANT
        self.media_dir = media_dir
        self._processed = {}
        self.reference = load_file(folder / "reference.safetensors")
        self.meta = json.loads((folder / "reference.json").read_text())
        self.model = audio_visual_model(fixtures_dir)
        self.config = self.model.config
        self.processor = audio_visual_processor(fixtures_dir)
        self.video = str(media_dir / self.case("av")["media_file"])
        self.wav = str(media_dir / self.case("audio")["media_file"])
        checkpoint = folder / "original_checkpoint"
        original_generation = json.loads((checkpoint / "generation_config.json").read_text())
        original_generation.pop("transformers_version", None)
        self.generation_config = GenerationConfig(
            **{**original_generation, "do_sample": False, "max_new_tokens": self.meta["max_new_tokens"]}
        )
        self.generation_config.pad_token_id = self.case("av")["generate_kwargs"]["pad_token_id"]

    def case(self, name):
        return self.meta["cases"][name]

    def expanded_ids(self, name):
        return expanded_audio_visual_ids(self.case(name), self.config.video_token_id, self.config.audio_token_id)

    def media(self, name):
        """Processor keywords for the case's media, as a user passes them."""
        media = case_media(self.media_dir, self.case(name), name)
        return media if name == "audio" else {**media, "return_metadata": True}

    def processed(self, name):
        """The processor's output for the case's prompt and media, computed (and decoded) once."""
        if name not in self._processed:
            self._processed[name] = self.processor(text=self.case(name)["prompt"], **self.media(name))
        return self._processed[name]

    def stored_media(self, name):
        """Model inputs from the original's processor outputs (pixels, bfloat16 filterbank)."""
        return stored_media(self.reference, name)

    def chat(self, name):
        """The case's question as transformers chat items, media first as the original prompt has it."""
        media = {"type": "audio", "path": self.wav} if name == "audio" else {"type": "video", "path": self.video}
        return [{"role": "user", "content": [media, {"type": "text", "text": self.case(name)["instruct"]}]}]


@pytest.fixture(scope="module")
def av(fixtures_dir, media_dir):
    return AudioVisual(fixtures_dir, media_dir)


def assert_fbank_close(features, expected):
    """Equal to the original's bfloat16 filterbank but for a few values one bfloat16 step away."""
    expected = expected.float()
    differ = features != expected
    assert differ.sum() <= MAX_FBANK_ULP_FLIPS, f"{int(differ.sum())} filterbank values differ"
    neighbour = torch.nextafter(features[differ].bfloat16(), expected[differ].bfloat16()).float()
    assert torch.equal(neighbour, expected[differ])


def test_token_counts(av):
    assert av.config.get_num_visual_tokens() == av.case("av")["num_video_tokens"] == 32
    assert av.config.audio_config.get_num_audio_tokens(2998) == av.case("av")["num_audio_tokens"] == 1496
    counts = av.processor._get_num_multimodal_tokens(video_sizes=[(16, 360, 640)], audio_lengths=[480000, 155295])
    assert counts["num_video_tokens"] == [32] and counts["num_audio_tokens"] == [1496, 1496]


@pytest.mark.parametrize("name", CASES)
def test_prompt_and_input_ids(av, name):
    case = av.case(name)
    processor = av.processor
    for messages in (case["messages"], av.chat(name)):  # the original's strings, then transformers' content items
        assert processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) == case["prompt"]
    inputs = av.processed(name)
    ids = inputs["input_ids"][0]
    assert ids.tolist() == av.expanded_ids(name) and inputs["attention_mask"].all()
    # the merged layout of the original: text, then the video's tokens, then the audio's, then text
    layout = case["merged_layout"]
    for modality, token_id in (("video", processor.video_token_id), ("audio", processor.audio_token_id)):
        start, end = layout[modality]
        assert torch.equal((ids == token_id).nonzero().flatten(), torch.arange(start, end))
    assert len(ids) == layout["text_after"][1]


def test_processor_pixels_frames_and_filterbanks(av):
    """The processor's own decoding: frames and pixels exact, filterbanks up to bfloat16 rounding flips."""
    for name in CASES:
        inputs = av.processed(name)
        if name != "audio":
            assert list(inputs["video_metadata"][0].frames_indices) == av.case(name)["sampled_frame_indices"]
            assert_close(inputs["pixel_values_videos"][0], av.reference["av.pixel_values"], atol=1e-6, what="pixels")
        if name == "video":
            assert "input_features" not in inputs
        else:
            assert inputs["input_features"].shape == (1, 2998, 128)
            assert_fbank_close(inputs["input_features"][0], av.reference[f"{name}.fbank"][0])


def test_processor_takes_the_originals_decoded_sound_track(av):
    """A sound track decoded elsewhere (here the original's ffmpeg PCM, cut into its 8 clips) pairs with its video
    through `audio_from_video_indices`, as transformers' omni-modal processors take it."""
    pcm = av.reference["av.audio_decoded_int16"].numpy()
    clips = np.concatenate([pcm[start:end] for start, end in clip_sample_ranges(len(pcm))]).astype(np.float32)
    inputs = av.processor(
        text=av.case("av")["prompt"],
        videos=[av.video],
        audio=[clips / 32768],
        audio_from_video_indices=[0],
        load_audio_from_video=True,
        sampling_rate=16000,
    )
    assert inputs["input_ids"][0].tolist() == av.expanded_ids("av")
    assert_fbank_close(inputs["input_features"][0], av.reference["av.fbank"][0])


@pytest.mark.parametrize("name", ["av", "audio"])
def test_audio_tower_and_projector(av, name):
    ref = av.reference
    with torch.no_grad():
        encoded = av.model.get_audio_features(ref[f"{name}.fbank"].float())
        if name == "audio":
            embedded = av.model.model.audio_tower.embed_patches(ref["audio.fbank"].float())
            assert_close(embedded, ref["audio.audio_encoder_input"], what="patch embedding")
    assert_close(encoded.last_hidden_state, ref[f"{name}.audio_features"], what="BEATs output")
    assert_close(encoded.pooler_output, ref[f"{name}.audio_mm_features"], what="audio projector output")


@pytest.mark.parametrize("name", ["av", "video"])
def test_vision_tower_and_connector(av, name):
    ref = av.reference
    with torch.no_grad():
        encoded = av.model.get_video_features(ref["av.pixel_values"][None], output_hidden_states=True)
    assert_close(encoded.hidden_states[av.config.vision_feature_layer], ref[f"{name}.vision_features"])
    assert_close(encoded.pooler_output, ref[f"{name}.mm_features"], what="connector output")


@pytest.mark.parametrize("name", CASES)
def test_forward_matches_reference(av, name):
    ref = av.reference
    ids = torch.tensor([av.expanded_ids(name)])
    with torch.no_grad():
        outputs = av.model(input_ids=ids, labels=ids, output_hidden_states=True, **av.stored_media(name))
    placeholders = torch.isin(ids, torch.tensor([av.config.video_token_id, av.config.audio_token_id]))
    assert torch.equal(ids.masked_fill(placeholders, -100), ref[f"{name}.merged_labels"])
    hidden_states = torch.stack(outputs.hidden_states)
    assert_close(hidden_states[0], ref[f"{name}.inputs_embeds"], what="merged embeddings")
    assert_close(hidden_states, ref[f"{name}.hidden_states"], what="hidden states")
    logits = outputs.logits
    assert_logits_close(logits[:, -1], ref[f"{name}.logits_last"], what="last logits")
    assert_logits_close(logits.logsumexp(-1), ref[f"{name}.logits_lse"], what="logsumexp")
    selected = logits[:, ref[f"{name}.logits_sel_positions"]][..., ref[f"{name}.logits_sel_ids"]]
    assert_logits_close(selected, ref[f"{name}.logits_sel"], what="selected logits")
    decided = ref[f"{name}.logits_top2_margin"] > MARGIN_FOR_EXACT_IDS  # near-ties of the random model excluded
    assert torch.equal(logits.argmax(-1)[decided], ref[f"{name}.logits_argmax"][decided])
    assert_logits_close(outputs.loss, ref[f"{name}.loss"], what="loss")


@pytest.mark.parametrize("name", CASES)
def test_greedy_generation(av, name):
    """From the prompt and media files through the processor: the original's answer, up to the first near-tie."""
    case = av.case(name)
    inputs = av.processor.apply_chat_template(
        av.chat(name), add_generation_prompt=True, tokenize=True, return_dict=True, load_audio_from_video=name == "av"
    )
    with torch.no_grad():
        generated = av.model.generate(**inputs, generation_config=av.generation_config)
    new_tokens = generated[0, inputs["input_ids"].shape[1] :].tolist()
    exact = first_low_margin_step(case["generate_step_margins"])
    assert new_tokens[:exact] == case["generated_ids"][:exact]
    if exact == len(case["generated_ids"]):
        answer = av.processor.post_process_image_text_to_text(generated[:, inputs["input_ids"].shape[1] :])
        assert answer == [case["generated_text"]]


@pytest.mark.parametrize("name", CASES)
def test_teacher_forced_scores(av, name):
    """Feed the original's answer and compare its top-5 processed scores at every step."""
    case, ref = av.case(name), av.reference
    prompt, answer = av.expanded_ids(name), case["generated_ids"]
    ids = torch.tensor([prompt + answer[:-1]])
    with torch.no_grad():
        logits = av.model(input_ids=ids, logits_to_keep=len(answer), **av.stored_media(name)).logits[0]
    penalty = RepetitionPenaltyLogitsProcessor(av.generation_config.repetition_penalty)
    for step, step_logits in enumerate(logits):
        scores = penalty(ids[:, : len(prompt) + step], step_logits[None].clone())
        top_scores, top_ids = scores[0].topk(5)
        assert_logits_close(top_scores, ref[f"{name}.generate_top5_scores"][step], what=f"step {step} top-5 scores")
        assert top_ids[0].item() == answer[step]


def test_left_padded_batch_of_audio_visual_audio_and_video_rows(av):
    """One batch, left-padded: a video heard with its sound, an audio file, a silent video. Each row's hidden states
    equal its case's and its greedy answer is its case's."""
    names = ["av", "audio", "video"]
    inputs = av.processor(
        text=[av.case(name)["prompt"] for name in names],
        videos=[av.video, av.video],
        audio=[av.wav],
        audio_from_video_indices=[0, None],  # the first video's sound, then the wav; the second video is silent
        load_audio_from_video=True,
        padding=True,
    )
    mask = inputs["attention_mask"].bool()
    assert not mask[:, 0].all() and mask[:, -1].all()  # really left-padded
    for row, name in enumerate(names):
        assert inputs["input_ids"][row, mask[row]].tolist() == av.expanded_ids(name)
    # the original's filterbanks, in the order of the <audio> runs, so the comparison is the model's alone
    inputs["input_features"] = torch.cat([av.reference["av.fbank"], av.reference["audio.fbank"]]).float()
    with torch.no_grad():
        outputs = av.model(**inputs, output_hidden_states=True, logits_to_keep=1)
        generated = av.model.generate(**inputs, generation_config=av.generation_config)
    for row, name in enumerate(names):
        last_hidden = outputs.hidden_states[-1][row, mask[row]]
        assert_close(last_hidden, av.reference[f"{name}.hidden_states"][-1, 0], what=f"{name} row")
        exact = first_low_margin_step(av.case(name)["generate_step_margins"])
        new_tokens = generated[row, inputs["input_ids"].shape[1] :].tolist()
        assert new_tokens[:exact] == av.case(name)["generated_ids"][:exact], name


def test_the_release_loads_directly_to_the_same_model_and_processor(av, fixtures_dir, tmp_path):
    """The Auto classes read the release as it is (config, tensor names, tokenizer with <audio>, filterbank): the same
    weights as the key table gives, nothing missing or left over, and the same processor outputs."""
    release = original_folder(fixtures_dir, AV_VARIANT, tmp_path / "VideoLLaMA2.1-7B-AV")
    model, info = AutoModelForImageTextToText.from_pretrained(release, dtype=torch.float32, output_loading_info=True)
    assert not any(info.values()), info
    assert model.config.to_diff_dict() == av.config.to_diff_dict()
    expected = av.model.state_dict()
    assert model.state_dict().keys() == expected.keys()
    assert all(torch.equal(tensor, expected[name]) for name, tensor in model.state_dict().items())
    processor = load_original_processor(release)
    for name in ("av", "audio"):
        direct, built = processor(text=av.case(name)["prompt"], **av.media(name)), av.processed(name)
        assert torch.equal(direct["input_ids"], built["input_ids"])
        assert torch.equal(direct["input_features"], built["input_features"])
