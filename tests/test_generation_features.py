"""Generation and training features on a tiny random VideoLLaMA2: streaming, static cache, compiled decoding, LoRA,
device_map, bf16.

KV-cache equivalence, seeded sampling, beam search with `num_return_sequences`, left-padded mixed batches and
gradient checkpointing are covered in test_modeling_videollama2.py.
"""

import threading

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoModelForImageTextToText,
    AutoProcessor,
    CompileConfig,
    TextIteratorStreamer,
    TextStreamer,
    TokenizersBackend,
)
from videollama2_test_utils import (
    BOS_ID,
    EOS_ID,
    IMAGE_ID,
    PAD_ID,
    VIDEO_ID,
    VOCAB,
    converted_folder,
    first_low_margin_step,
    tiny_config,
)

from videollama2_hf import VideoLlama2Config, VideoLlama2ForConditionalGeneration


FRAMES = 4
SIZE = 56


def tiny_tokenizer() -> TokenizersBackend:
    """Word-level tokenizer over the tiny vocabulary: id i <-> "w{i}"."""
    vocab = {"<pad>": PAD_ID, "<s>": BOS_ID, "</s>": EOS_ID, **{f"w{i}": i for i in range(3, VOCAB)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return TokenizersBackend(tokenizer_object=backend, pad_token="<pad>", bos_token="<s>", eos_token="</s>")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return VideoLlama2ForConditionalGeneration(tiny_config()).eval()


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    model.save_pretrained(folder)
    return folder


def pixels(shape, seed=1):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def row(model, modality=None, text=(5, 6, 7)):
    visual = []
    if modality is not None:
        visual = [VIDEO_ID if modality == "video" else IMAGE_ID] * model.config.get_num_visual_tokens()
    return [BOS_ID, *visual, *text]


def batch(model):
    """A video row, an image row and a text-only row, left-padded."""
    rows = [row(model, "video"), row(model, "image", (9, 10, 11, 12)), row(model, None, (20, 21))]
    width = max(map(len, rows))
    return {
        "input_ids": torch.tensor([[PAD_ID] * (width - len(r)) + r for r in rows]),
        "attention_mask": torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows]),
        "pixel_values_videos": pixels((1, FRAMES, 3, SIZE, SIZE)),
        "pixel_values": pixels((1, 3, SIZE, SIZE), seed=2),
    }


def video_inputs(model):
    return {
        "input_ids": torch.tensor([row(model, "video")]),
        "pixel_values_videos": pixels((1, FRAMES, 3, SIZE, SIZE)),
    }


GREEDY = {"do_sample": False, "max_new_tokens": 6, "pad_token_id": PAD_ID, "eos_token_id": None}


def test_text_iterator_streamer_yields_the_generated_text(model):
    tokenizer = tiny_tokenizer()
    inputs = video_inputs(model)
    with torch.no_grad():
        expected = model.generate(**inputs, **GREEDY)[0, inputs["input_ids"].shape[1] :]
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    thread = threading.Thread(target=model.generate, kwargs={**inputs, **GREEDY, "streamer": streamer})
    thread.start()
    chunks = list(streamer)
    thread.join()
    assert len(chunks) >= 1
    assert "".join(chunks).split() == tokenizer.decode(expected, skip_special_tokens=True).split()
    assert "".join(chunks).split() == [f"w{i}" for i in expected.tolist() if i > EOS_ID]


def test_text_streamer_prints_to_stdout(model, capsys):
    tokenizer = tiny_tokenizer()
    inputs = video_inputs(model)
    with torch.no_grad():
        out = model.generate(**inputs, **GREEDY, streamer=TextStreamer(tokenizer, skip_prompt=True))
    printed = capsys.readouterr().out
    assert printed.split() == tokenizer.decode(out[0, inputs["input_ids"].shape[1] :]).split()


def test_static_cache_matches_dynamic_cache(model):
    inputs = batch(model)
    with torch.no_grad():
        dynamic = model.generate(**inputs, **GREEDY)
        static = model.generate(**inputs, **GREEDY, cache_implementation="static")
    assert torch.equal(dynamic, static)


# More decode steps than dynamo's recompile limit (8): a step that recompiles would fail even without the stance.
LONG_GENERATION = 12


@pytest.mark.parametrize(
    ("sliding_window", "dynamic"),
    [(None, False), (4096, None)],
    ids=["full-attention-static-shapes", "sliding-window-automatic-dynamic"],
)
def test_compiled_decode_steps_match_eager_without_graph_breaks_or_recompiles(sliding_window, dynamic):
    """generate compiles the decode step (static cache + torch.compile) as for in-tree VLMs: only the prefill sees
    pixels, so the compiled step is text-only. `fullgraph=True` raises on any graph break. After a short warm-up, long
    generations (new pixels and ids, same shapes) run under "fail_on_recompile": no step may recompile.

    The released Mistral/Mixtral configs have no sliding window and compile once with static shapes. With Mistral's
    default 4096-token window the static cache counts tokens in a Python int, which only the default
    `dynamic=None` turns symbolic (one recompile, in the warm-up); with `dynamic=False` every step would recompile.
    """
    torch.manual_seed(0)
    config = tiny_config()
    config.text_config.sliding_window = sliding_window
    model = VideoLlama2ForConditionalGeneration(config).eval()
    compile_config = CompileConfig(fullgraph=True, dynamic=dynamic)
    compile_config._compile_all_devices = True  # compile on CPU too, as transformers' own compile tests do
    first = batch(model)
    second = {**first, "pixel_values_videos": pixels(first["pixel_values_videos"].shape, seed=3)}
    second["input_ids"] = first["input_ids"].masked_fill(first["input_ids"] == 7, 8)
    # One cache size for the warm-up and the long calls, so that their decode steps share tensor shapes.
    kwargs = {
        **GREEDY,
        "max_new_tokens": LONG_GENERATION,
        "max_cache_len": first["input_ids"].shape[1] + LONG_GENERATION,
        "cache_implementation": "static",
    }
    torch.compiler.reset()
    try:
        with torch.no_grad():
            eager = [model.generate(**inputs, **kwargs, disable_compile=True) for inputs in (first, second)]
            kwargs["compile_config"] = compile_config
            model.generate(**first, **{**kwargs, "max_new_tokens": 3})  # two decode steps: compile (+ recompile)
            assert hasattr(model, "_compiled_call")
            with torch.compiler.set_stance("fail_on_recompile"):
                compiled = [model.generate(**inputs, **kwargs) for inputs in (first, second)]
    finally:
        torch.compiler.reset()
    assert all(torch.equal(a, b) for a, b in zip(eager, compiled))
    assert not torch.equal(eager[0], eager[1])  # the two calls really differ


def test_static_cache_with_beam_search(model):
    inputs = video_inputs(model)
    kwargs = {**GREEDY, "num_beams": 2, "num_return_sequences": 2}
    with torch.no_grad():
        dynamic = model.generate(**inputs, **kwargs)
        static = model.generate(**inputs, **kwargs, cache_implementation="static")
    assert dynamic.shape == (2, inputs["input_ids"].shape[1] + GREEDY["max_new_tokens"])
    assert torch.equal(dynamic, static)


def test_lora_on_the_language_model_trains_saves_and_reloads(saved, tmp_path):
    import peft  # a test dependency: a missing install must fail, not skip

    model = AutoModelForImageTextToText.from_pretrained(saved, dtype=torch.float32)
    lora = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=r".*language_model.*\.(q_proj|v_proj)",
        lora_dropout=0.0,
        init_lora_weights=False,
    )
    peft_model = peft.get_peft_model(model, lora)
    trainable = [name for name, param in peft_model.named_parameters() if param.requires_grad]
    assert trainable and all("language_model" in name and "lora_" in name for name in trainable)

    inputs = batch(model)
    labels = inputs["input_ids"].masked_fill(inputs["attention_mask"] == 0, -100)
    peft_model.train()
    optimizer = torch.optim.SGD([p for p in peft_model.parameters() if p.requires_grad], lr=0.1)
    before = {name: param.detach().clone() for name, param in peft_model.named_parameters() if param.requires_grad}
    loss = peft_model(**inputs, labels=labels).loss
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert any(not torch.equal(before[n], p) for n, p in peft_model.named_parameters() if p.requires_grad)
    assert model.model.vision_tower.embeddings.patch_embedding.weight.grad is None  # frozen

    peft_model.eval()
    with torch.no_grad():
        expected = peft_model(**inputs).logits
        generated = peft_model.generate(**inputs, **GREEDY)
    peft_model.save_pretrained(tmp_path / "adapter")
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()

    base = AutoModelForImageTextToText.from_pretrained(saved, dtype=torch.float32)
    reloaded = peft.PeftModel.from_pretrained(base, tmp_path / "adapter").eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, expected, atol=1e-6, rtol=0)
        assert torch.equal(reloaded.generate(**inputs, **GREEDY), generated)
    merged = reloaded.merge_and_unload()
    assert isinstance(merged, VideoLlama2ForConditionalGeneration)
    with torch.no_grad():
        torch.testing.assert_close(merged(**inputs).logits, expected, atol=1e-5, rtol=1e-5)


def test_device_map_auto_loads_and_generates(saved, model, tmp_path):
    reference_inputs = batch(model)
    with torch.no_grad():
        reference = model.generate(**reference_inputs, **GREEDY)

    loaded = AutoModelForImageTextToText.from_pretrained(saved, device_map="auto", dtype=torch.float32)
    assert isinstance(loaded, VideoLlama2ForConditionalGeneration)
    inputs = {key: value.to(loaded.device) for key, value in reference_inputs.items()}
    with torch.no_grad():
        assert torch.equal(loaded.generate(**inputs, **GREEDY).cpu(), reference)

    # too little memory: accelerate dispatches with hooks and offloads the rest to disk (never splitting the connector)
    offloaded = AutoModelForImageTextToText.from_pretrained(
        saved, device_map="auto", max_memory={"cpu": "250KB"}, offload_folder=tmp_path, dtype=torch.float32
    )
    placements = offloaded.hf_device_map
    assert "disk" in placements.values()
    assert not any(name.startswith("model.multi_modal_projector.") for name in placements)
    with torch.no_grad():
        assert torch.equal(offloaded.generate(**reference_inputs, **GREEDY), reference)


def test_bfloat16_loading_and_generation(saved, model):
    loaded = AutoModelForImageTextToText.from_pretrained(saved, dtype=torch.bfloat16)
    dtypes = {param.dtype for param in loaded.parameters()}
    assert dtypes == {torch.bfloat16}
    inputs = batch(model)  # float32 pixels: the model casts them to the tower's dtype
    with torch.no_grad():
        out = loaded.generate(**inputs, **GREEDY)
        logits = loaded(**inputs).logits
    assert out.shape == (3, inputs["input_ids"].shape[1] + GREEDY["max_new_tokens"])
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
    with torch.no_grad():
        fp32_logits = model(**inputs).logits
    attended = inputs["attention_mask"].bool()
    assert (logits.float()[attended] - fp32_logits[attended]).abs().max() < 0.1


def test_assisted_and_prompt_lookup_decoding_give_the_greedy_answer_on_a_video(fixtures_dir, media_dir, tmp_path):
    """Speculative decoding runs the draft (and the main model's verification steps) on ids that hold the video's
    placeholders without its pixels; the answer must still be exactly the greedy one."""
    folder = converted_folder(fixtures_dir, "mistral_stc_f8", tmp_path)
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
    processor = AutoProcessor.from_pretrained(folder)
    video = {"type": "video", "path": str(media_dir / "sample_demo_1.mp4")}
    messages = [{"role": "user", "content": [video, {"type": "text", "text": "What does the baby do?"}]}]
    inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)
    # A smaller VideoLLaMA2 sharing the tokenizer and the connector (hence the prompt): a 1-layer, narrower LLM.
    draft_config = model.config.to_dict()
    draft_config["text_config"].update(
        hidden_size=32, intermediate_size=48, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1
    )
    draft_config["text_config"]["head_dim"] = 16
    torch.manual_seed(0)
    draft = VideoLlama2ForConditionalGeneration(VideoLlama2Config(**draft_config)).eval()
    assert draft.num_parameters() < model.num_parameters() / 2

    greedy = {"do_sample": False, "max_new_tokens": 10}
    with torch.no_grad():
        reference = model.generate(**inputs, **greedy, output_scores=True, return_dict_in_generate=True)
        assisted = model.generate(**inputs, **greedy, assistant_model=draft)
        prompt_lookup = model.generate(**inputs, **greedy, prompt_lookup_num_tokens=3)
    top2 = torch.stack(reference.scores, 1)[0].topk(2, dim=-1).values
    margins = (top2[:, 0] - top2[:, 1]).tolist()
    assert first_low_margin_step(margins) == len(margins) == 10  # no near-tie: exact ids are a fair demand
    assert assisted.tolist() == reference.sequences.tolist()
    assert prompt_lookup.tolist() == reference.sequences.tolist()
