"""`pipeline("image-text-to-text")` and the visual-question-answering pipeline on tiny converted checkpoints (the
audio-visual one hears audio items and videos with their sound)."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline
from videollama2_test_utils import audio_visual_folder, converted_folder

from videollama2_hf.pipeline_videollama2 import VideoLlama2VisualQuestionAnsweringPipeline
from videollama2_hf.remote_code import VQA_PIPELINE_ENTRY, add_vqa_pipeline_to_folder


QUESTION = "What is happening?"
GREEDY = {"do_sample": False, "max_new_tokens": 5, "min_new_tokens": 5}


@pytest.fixture(scope="module")
def folder(fixtures_dir, tmp_path_factory):
    return converted_folder(fixtures_dir, "mistral_stc_f8", tmp_path_factory.mktemp("converted"))


@pytest.fixture(scope="module")
def chat_pipe(folder):
    return pipeline("image-text-to-text", model=str(folder))


@pytest.fixture(scope="module")
def vqa(folder):
    return pipeline("image-text-to-text", model=str(folder), pipeline_class=VideoLlama2VisualQuestionAnsweringPipeline)


@pytest.fixture(scope="module")
def media(media_dir):
    frames = np.random.default_rng(0).integers(0, 256, (12, 48, 64, 3), dtype=np.uint8)
    return {
        "image_path": str(media_dir / "extreme_ironing.jpg"),
        "video_path": str(media_dir / "sample_demo_1.mp4"),
        "video_array": frames,
        "video_frames": [Image.fromarray(frame) for frame in frames[:8]],
    }


def chat(item):
    return [{"role": "user", "content": [item, {"type": "text", "text": QUESTION}]}]


def direct_answer(folder, item, load_audio_from_video=False, **processor_kwargs):
    """The greedy answer computed by hand: processor + generate + decode."""
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    inputs = processor.apply_chat_template(
        chat(item),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        load_audio_from_video=load_audio_from_video,
        processor_kwargs=processor_kwargs,
    )
    with torch.no_grad():
        out = model.generate(**inputs, **GREEDY)
    return processor.post_process_image_text_to_text(out[:, inputs["input_ids"].shape[1] :])[0]


ITEMS = {
    "image path": lambda m: {"type": "image", "path": m["image_path"]},
    "PIL image": lambda m: {"type": "image", "image": Image.open(m["image_path"])},
    "video path": lambda m: {"type": "video", "path": m["video_path"]},
    "video array": lambda m: {"type": "video", "video": m["video_array"]},
    "video frames": lambda m: {"type": "video", "video": m["video_frames"]},
}


@pytest.mark.parametrize("kind", list(ITEMS))
def test_chat_pipeline_answers_images_and_videos(chat_pipe, folder, media, kind):
    item = ITEMS[kind](media)
    out = chat_pipe(text=chat(item), generate_kwargs=GREEDY, return_full_text=False)
    assert len(out) == 1 and set(out[0]) == {"input_text", "generated_text"}
    assert out[0]["generated_text"] == direct_answer(folder, item)


def test_chat_pipeline_returns_the_conversation(chat_pipe, media):
    out = chat_pipe(text=chat(ITEMS["image path"](media)), generate_kwargs=GREEDY)
    conversation = out[0]["generated_text"]
    assert [turn["role"] for turn in conversation] == ["user", "assistant"]
    assert isinstance(conversation[-1]["content"], str) and conversation[-1]["content"].strip()


def test_chat_pipeline_batches_left_padded(chat_pipe, media):
    """Rows of one batch share a modality (the pipeline's collate needs the same input keys in every row); a mixed
    list runs with the default batch_size=1."""
    videos = [chat(ITEMS[kind](media)) for kind in ("video array", "video path", "video frames")]
    images = [chat(ITEMS["image path"](media)), chat(ITEMS["PIL image"](media))]
    for chats in (videos, images):
        one_by_one = [chat_pipe(text=c, generate_kwargs=GREEDY, return_full_text=False) for c in chats]
        batched = chat_pipe(text=chats, generate_kwargs=GREEDY, return_full_text=False, batch_size=len(chats))
        assert [answer[0]["generated_text"] for answer in batched] == [a[0]["generated_text"] for a in one_by_one]
    mixed = chat_pipe(text=[videos[0], images[0]], generate_kwargs=GREEDY, return_full_text=False)
    assert len(mixed) == 2


def test_chat_pipeline_honours_generate_kwargs(chat_pipe, media):
    item = chat(ITEMS["image path"](media))
    out = chat_pipe(text=item, return_tensors=True, generate_kwargs={"max_new_tokens": 3, "min_new_tokens": 3})
    assert len(out[0]["generated_token_ids"]) == out[0]["generated_token_ids"].numel()
    beams = chat_pipe(
        text=item,
        return_full_text=False,
        generate_kwargs={"num_beams": 3, "num_return_sequences": 3, "max_new_tokens": 4, "do_sample": False},
    )
    assert len(beams) == 3 and all(answer["generated_text"] for answer in beams)
    torch.manual_seed(0)
    sampled = chat_pipe(text=item, return_full_text=False, generate_kwargs={"do_sample": True, "max_new_tokens": 4})
    torch.manual_seed(0)
    again = chat_pipe(text=item, return_full_text=False, generate_kwargs={"do_sample": True, "max_new_tokens": 4})
    assert sampled == again
    short = chat_pipe(text=item, max_new_tokens=1, return_full_text=False)
    assert len(short[0]["generated_text"].split()) <= 1


def test_chat_pipeline_passes_num_frames_to_the_processor(chat_pipe, folder, media):
    item = ITEMS["video array"](media)
    out = chat_pipe(
        text=chat(item), generate_kwargs=GREEDY, return_full_text=False, processor_kwargs={"num_frames": 4}
    )
    assert out[0]["generated_text"] == direct_answer(folder, item, num_frames=4)


def test_vqa_pipeline_answers_an_image_or_a_video(vqa, chat_pipe, media):
    for key, item in (("image", media["image_path"]), ("video", media["video_path"]), ("video", media["video_array"])):
        answer = vqa(**{key: item}, question=QUESTION, generate_kwargs=GREEDY)
        expected = chat_pipe(text=chat({"type": key, key: item}), generate_kwargs=GREEDY, return_full_text=False)
        assert answer == [{"answer": expected[0]["generated_text"]}]


def test_vqa_pipeline_batches(vqa, media):
    single = vqa(image=media["image_path"], question=QUESTION, generate_kwargs=GREEDY)
    many = vqa(image=[media["image_path"], media["image_path"]], question=QUESTION, generate_kwargs=GREEDY)
    assert many == [single, single]
    pairs = vqa(video=media["video_array"], question=[QUESTION, QUESTION], generate_kwargs=GREEDY)
    assert len(pairs) == 2 and pairs[0] == pairs[1]
    dicts = vqa(
        [{"image": media["image_path"], "question": QUESTION}, {"video": media["video_frames"], "question": "Hi?"}],
        generate_kwargs=GREEDY,
    )
    assert len(dicts) == 2 and all(len(answer) == 1 and "answer" in answer[0] for answer in dicts)
    with pytest.raises(ValueError, match="exactly one of `image`, `video` and `audio`"):
        vqa(question=QUESTION)
    with pytest.raises(ValueError, match="2 images/videos/sounds but 3 questions"):
        vqa(image=[media["image_path"]] * 2, question=[QUESTION] * 3)
    # a waveform given as a list of numpy samples is one sound, a list of waveforms a batch
    samples = list(np.zeros(4, np.float32))
    requests, single = vqa._requests(None, None, QUESTION, samples)
    assert single and len(requests) == 1 and requests[0][0]["audio"] is samples
    requests, single = vqa._requests(None, None, QUESTION, [samples, samples])
    assert not single and len(requests) == 2


def test_visual_question_answering_task_through_custom_pipelines(folder, tmp_path, media):
    import shutil

    shipped = tmp_path / "with-vqa"
    shutil.copytree(folder, shipped)
    copied = add_vqa_pipeline_to_folder(shipped)
    add_vqa_pipeline_to_folder(shipped)  # idempotent
    config = json.loads((shipped / "config.json").read_text())
    assert config["custom_pipelines"] == {
        "visual-question-answering": {
            "impl": "pipeline_videollama2.VideoLlama2VisualQuestionAnsweringPipeline",
            "pt": ["AutoModelForImageTextToText"],
            "type": "multimodal",
        }
    }
    assert config["custom_pipelines"]["visual-question-answering"] == VQA_PIPELINE_ENTRY
    assert copied.name == "pipeline_videollama2.py" and copied.is_file()
    # package users: the task name with the class, no remote code needed
    pipe = pipeline(
        "visual-question-answering", model=str(shipped), pipeline_class=VideoLlama2VisualQuestionAnsweringPipeline
    )
    assert isinstance(pipe, VideoLlama2VisualQuestionAnsweringPipeline)
    answer = pipe(image=media["image_path"], question=QUESTION, generate_kwargs=GREEDY)
    assert len(answer) == 1 and answer[0]["answer"]
    with pytest.raises(ValueError, match="trust_remote_code"):
        pipeline("visual-question-answering", model=str(shipped))
    with pytest.raises(FileNotFoundError):
        add_vqa_pipeline_to_folder(tmp_path / "empty")


def test_pipeline_on_a_release_in_the_original_layout(fixtures_dir, tmp_path, media, chat_pipe):
    from videollama2_test_utils import original_folder

    from videollama2_hf.original_checkpoint import load_original_processor

    release = original_folder(fixtures_dir, "mistral_stc_f8", tmp_path / "VideoLLaMA2-7B")
    processor = load_original_processor(release)  # a release has no processor files
    pipe = pipeline("image-text-to-text", model=str(release), processor=processor, dtype="float32")
    item = chat(ITEMS["image path"](media))
    answer = pipe(text=item, generate_kwargs=GREEDY, return_full_text=False)[0]["generated_text"]
    assert answer == chat_pipe(text=item, generate_kwargs=GREEDY, return_full_text=False)[0]["generated_text"]
    vqa = pipeline(
        "image-text-to-text",
        model=str(release),
        processor=processor,
        pipeline_class=VideoLlama2VisualQuestionAnsweringPipeline,
    )
    assert vqa(image=media["image_path"], question=QUESTION, generate_kwargs=GREEDY)[0]["answer"]


@pytest.fixture(scope="module")
def audio_visual(fixtures_dir, tmp_path_factory):
    return audio_visual_folder(fixtures_dir, tmp_path_factory.mktemp("audio-visual"))


def test_pipelines_hear_audio_and_videos_with_their_sound(audio_visual, media):
    """transformers' chat pipeline takes audio items and `load_audio_from_video=True`; the VQA pipeline `audio=` and
    `with_audio=True`. Each answer is the one computed by hand."""
    wav = str(media["video_path"]).replace("sample_demo_1.mp4", "bird-twitter-car.wav")
    chat_pipe = pipeline("image-text-to-text", model=str(audio_visual))
    vqa = pipeline(
        "image-text-to-text", model=str(audio_visual), pipeline_class=VideoLlama2VisualQuestionAnsweringPipeline
    )
    sound = {"type": "audio", "path": wav}
    heard = chat_pipe(text=chat(sound), generate_kwargs=GREEDY, return_full_text=False)[0]["generated_text"]
    assert heard == direct_answer(audio_visual, sound)
    assert vqa(audio=wav, question=QUESTION, generate_kwargs=GREEDY) == [{"answer": heard}]
    video = {"type": "video", "path": media["video_path"]}
    kwargs = {"generate_kwargs": GREEDY, "return_full_text": False}
    with_sound = chat_pipe(text=chat(video), load_audio_from_video=True, **kwargs)[0]["generated_text"]
    assert with_sound == direct_answer(audio_visual, video, load_audio_from_video=True)
    answer = vqa(video=media["video_path"], question=QUESTION, with_audio=True, generate_kwargs=GREEDY)
    assert answer == [{"answer": with_sound}]
    silent = vqa(video=media["video_path"], question=QUESTION, generate_kwargs=GREEDY)
    assert silent == [{"answer": direct_answer(audio_visual, video)}]


@pytest.mark.parametrize("family", ["mistral", "chatml"])
def test_chat_pipeline_answers_start_with_the_answer(family, folder, audio_visual, media):
    """The pipeline's answer is the decoded answer itself for every chat template family: no newline left from
    ChatML's "assistant\n", no space from Mistral's " [/INST]", also in the returned conversation and after a
    previous turn."""
    checkpoint = {"mistral": folder, "chatml": audio_visual}[family]
    pipe = pipeline("image-text-to-text", model=str(checkpoint))
    item = ITEMS["image path"](media)
    expected = direct_answer(checkpoint, item)
    assert pipe(text=chat(item), generate_kwargs=GREEDY, return_full_text=False)[0]["generated_text"] == expected
    conversation = pipe(text=chat(item), generate_kwargs=GREEDY)[0]["generated_text"]
    assert conversation[-1] == {"role": "assistant", "content": expected}
    second_turn = [*conversation, {"role": "user", "content": [{"type": "text", "text": "And then?"}]}]
    answer = pipe(text=second_turn, generate_kwargs=GREEDY, return_full_text=False)[0]["generated_text"]
    assert answer and answer == answer.strip()
    # a prompt alone holds no answer; generated tokens alone are all answer
    prompt = pipe.processor.apply_chat_template(
        chat(item), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )["input_ids"]
    assert pipe.processor.post_process_image_text_to_text(prompt) == [""]
    assert pipe.processor.post_process_image_text_to_text(prompt[0]) == [""]
