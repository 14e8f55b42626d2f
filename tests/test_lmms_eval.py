"""lmms-eval's generic `huggingface` chat model on converted checkpoints, giving the package's own answers.

lmms-eval 0.5.0-0.7.3 pin `av<16` (this package needs av>=17: with av 15 pixels move and greedy answers change), so
pip cannot install it beside the package: the test installs the pinned release with `--no-deps` into a temporary
folder (its own dependencies are in the [test] extra) and drives its model class in a fresh interpreter, with the
workaround docs/serving.md gives for its AutoModel fallback. The sample is local: a video and a multiple-choice
question; no dataset is downloaded.
"""

import json
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor
from videollama2_test_utils import audio_visual_folder, converted_folder


LMMS_EVAL = "lmms-eval==0.7.3"
QUESTION = (
    "What is the man doing?\nA. Ironing\nB. Cooking\nC. Swimming\nD. Sleeping\n"
    "Answer with the option's letter from the given choices directly."
)
MAX_NEW_TOKENS = 6

# What a user runs (docs/serving.md): lmms-eval's generic model class, after the two-line AutoModel workaround.
DRIVER = """
import json, sys
sys.path.append(sys.argv[1])  # lmms-eval, installed with --no-deps: the environment's packages come first
from transformers import AutoModel
from videollama2_hf import VideoLlama2Config, VideoLlama2ForConditionalGeneration
AutoModel.register(VideoLlama2Config, VideoLlama2ForConditionalGeneration, exist_ok=True)

from lmms_eval.api.instance import Instance
from lmms_eval.models.chat.huggingface import Huggingface

folder, video, question, max_new_tokens = sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])

def doc_to_messages(doc):
    return [{"role": "user", "content": [{"type": "video", "url": doc["video"]}, {"type": "text", "text": doc["q"]}]}]

model = Huggingface(pretrained=folder, device="cpu", device_map="cpu")
model.task_dict = {"local_mc": {"test": [{"video": video, "q": question}]}}
arguments = ("", doc_to_messages, {"max_new_tokens": max_new_tokens}, 0, "local_mc", "test")
request = Instance("generate_until", arguments, 0, {"task": "local_mc", "doc_id": 0, "repeats": 1})
(result,) = model.generate_until([request])
print(json.dumps({"class": type(model.model).__name__, "text": result.text,
                  "tokens": result.token_counts.output_tokens}))
"""


@pytest.fixture(scope="module")
def lmms_eval_dir(tmp_path_factory):
    target = tmp_path_factory.mktemp("lmms-eval")
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), LMMS_EVAL]
    result = subprocess.run(install, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"could not install {LMMS_EVAL} (needs PyPI): {result.stderr[-2000:]}"
    return target


@pytest.fixture(scope="module")
def folders(fixtures_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("lmms-folders")
    return {
        "mistral": converted_folder(fixtures_dir, "mistral_stc_f8", root / "mistral"),
        "chatml": audio_visual_folder(fixtures_dir, root / "chatml"),
    }


def messages(video):
    return [{"role": "user", "content": [{"type": "video", "url": str(video)}, {"type": "text", "text": QUESTION}]}]


@pytest.mark.parametrize("family", ["mistral", "chatml"])
def test_rendered_prompt_through_the_processor_has_one_bos(folders, media_dir, family):
    """`processor(text=apply_chat_template(..., tokenize=False))`, as evaluation harnesses do, tokenizes as
    `apply_chat_template(tokenize=True)`: the BOS the Mistral template writes is not doubled."""
    processor = AutoProcessor.from_pretrained(folders[family])
    chat = messages(media_dir / "sample_demo_1.mp4")
    direct = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=True)
    rendered = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    video = str(media_dir / "sample_demo_1.mp4")
    for text in (rendered, [rendered]):
        through_text = processor(text=text, videos=[video], images=[], audios=[], return_tensors="pt")
        assert through_text["input_ids"].tolist() == direct["input_ids"].tolist()
        assert torch.equal(through_text["pixel_values_videos"], direct["pixel_values_videos"])
    bos = processor.tokenizer.bos_token_id
    assert direct["input_ids"][0][:2].tolist().count(bos) <= 1
    if family == "mistral":
        assert direct["input_ids"][0][0] == bos and rendered.startswith(processor.tokenizer.bos_token)
        # a text without the BOS text still gets one
        plain = processor(text="[INST] Hello [/INST]", return_tensors="pt")["input_ids"]
        assert plain[0, 0] == bos and plain[0, 1] != bos


def test_audios_is_the_former_name_of_audio(folders, media_dir):
    processor = AutoProcessor.from_pretrained(folders["chatml"])
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "audio", "path": "x"}, {"type": "text", "text": "Hi"}]}],
        add_generation_prompt=True,
    )
    wav = str(media_dir / "bird-twitter-car.wav")
    old = processor(text=text, audios=[wav], return_tensors="pt")
    new = processor(text=text, audio=[wav], return_tensors="pt")
    assert old["input_ids"].tolist() == new["input_ids"].tolist()
    assert torch.equal(old["input_features"], new["input_features"])
    with pytest.raises(ValueError, match="Pass the audio once"):
        processor(text=text, audio=[wav], audios=[wav])


@pytest.mark.parametrize("family", ["mistral", "chatml"])
def test_lmms_eval_generic_model_gives_the_package_answers(lmms_eval_dir, folders, media_dir, tmp_path, family):
    video = media_dir / "sample_demo_1.mp4"
    command = [sys.executable, "-c", DRIVER, str(lmms_eval_dir), str(folders[family]), str(video), QUESTION]
    result = subprocess.run([*command, str(MAX_NEW_TOKENS)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])

    # the package's answer: lmms-eval loads in bfloat16 and generates greedily with the tokenizer's EOS
    model = AutoModelForImageTextToText.from_pretrained(folders[family], dtype=torch.bfloat16).eval()
    processor = AutoProcessor.from_pretrained(folders[family])
    inputs = processor.apply_chat_template(
        messages(video), add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
    )
    with torch.inference_mode():
        output = model.generate(
            **inputs,
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            eos_token_id=processor.tokenizer.eos_token_id,
            pad_token_id=processor.tokenizer.pad_token_id,
        )
    new_tokens = output[0, inputs["input_ids"].shape[1] :]
    expected = processor.decode(new_tokens, skip_special_tokens=True, clean_up_tokenization_spaces=False)
    assert served == {"class": "VideoLlama2ForConditionalGeneration", "text": expected, "tokens": len(new_tokens)}
