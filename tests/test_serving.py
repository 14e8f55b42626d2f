"""`videollama2-hf serve` as a user runs it: transformers' OpenAI-compatible server in a child process on 127.0.0.1
(a free port, bounded start-up, stopped by its PID), asked with the official `openai` SDK. Every answer, streamed
or not, equals the package's own greedy `generate` on the same inputs, text and token counts. Two servers in all
(one per tiny checkpoint, module-scoped): the vision-only `mistral_stc_f8` and the audio-visual `qwen2_siglip_av`.

Videos also come as base64 `data:` URLs, and by http URL from a `http.server` thread on 127.0.0.1 serving the media
folder.
"""

import base64
import functools
import http.server
import subprocess
import sys
import threading

import openai
import pytest
import torch
from videollama2_test_utils import audio_visual_folder, converted_folder, running_server

from videollama2_hf import cli
from videollama2_hf.serving import serve_arguments


MAX_TOKENS = 6
QUESTION = "What is happening here?"
VIDEO, IMAGE, AUDIO = "sample_demo_1.mp4", "extreme_ironing.jpg", "bird-twitter-car.wav"


@pytest.fixture(scope="module")
def vision_folder(fixtures_dir, tmp_path_factory):
    return converted_folder(fixtures_dir, "mistral_stc_f8", tmp_path_factory.mktemp("serve") / "vision")


@pytest.fixture(scope="module")
def av_folder(fixtures_dir, tmp_path_factory):
    return audio_visual_folder(fixtures_dir, tmp_path_factory.mktemp("serve") / "av")


@pytest.fixture(scope="module")
def media_url(media_dir):
    """http://127.0.0.1:PORT serving the media folder, from a thread of this process."""
    handler = functools.partial(QuietHandler, directory=str(media_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(10)
    server.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Served:
    """A running server, its `openai` client, and the package's direct greedy answers for the same folder."""

    def __init__(self, folder, server):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.folder, self.server, self.model_name = folder, server, str(folder)
        self.client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=300)
        self.model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
        self.processor = AutoProcessor.from_pretrained(folder)

    def direct(self, items: list[dict], **template_kwargs) -> tuple[str, int, int]:
        """(text, prompt tokens, answer tokens) of `processor.apply_chat_template` + greedy `generate`, the media
        given as processor chat items; an audio-visual model hears each video's sound, as the server makes it."""
        messages = [{"role": "user", "content": [*items, {"type": "text", "text": QUESTION}]}]
        has_video = any(item["type"] == "video" for item in items)
        inputs = self.processor.apply_chat_template(
            messages,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            load_audio_from_video=self.model.config.audio_config is not None and has_video,
            **template_kwargs,
        )
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=MAX_TOKENS, do_sample=False)
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        text = self.processor.decode(new_tokens, skip_special_tokens=True)
        return text, inputs["input_ids"].shape[1], len(new_tokens)

    def ask(self, content: list[dict], stream: bool, **extra) -> tuple[str, int, int]:
        """(text, prompt tokens, answer tokens) of one chat completion with `content` and the question."""
        request = {
            "model": self.model_name,
            "messages": [{"role": "user", "content": [*content, {"type": "text", "text": QUESTION}]}],
            "max_tokens": MAX_TOKENS,
            "temperature": 0,
            **extra,
        }
        if not stream:
            response = self.client.chat.completions.create(**request)
            usage = response.usage
            return response.choices[0].message.content, usage.prompt_tokens, usage.completion_tokens
        chunks = list(
            self.client.chat.completions.create(**request, stream=True, stream_options={"include_usage": True})
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        usage = chunks[-1].usage
        return text, usage.prompt_tokens, usage.completion_tokens


@pytest.fixture(scope="module")
def vision(vision_folder):
    with running_server(vision_folder) as server:
        yield Served(vision_folder, server)


@pytest.fixture(scope="module")
def audio_visual(av_folder):
    with running_server(av_folder) as server:
        yield Served(av_folder, server)


def data_url(path, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(path.read_bytes()).decode()}"


# (case, OpenAI content, the same media as processor chat items); `media` is the media folder, `url` its http URL
VISION_CASES = {
    "text": lambda media, url: ([], []),
    "image data URL": lambda media, url: (
        [{"type": "image_url", "image_url": {"url": data_url(media / IMAGE, "image/jpeg")}}],
        [{"type": "image", "path": str(media / IMAGE)}],
    ),
    "video path": lambda media, url: (
        [{"type": "video_url", "video_url": {"url": str(media / VIDEO)}}],
        [{"type": "video", "path": str(media / VIDEO)}],
    ),
    "video data URL": lambda media, url: (
        [{"type": "video_url", "video_url": {"url": data_url(media / "sample_demo_3.mp4", "video/mp4")}}],
        [{"type": "video", "path": str(media / "sample_demo_3.mp4")}],
    ),
    "video http URL": lambda media, url: (
        [{"type": "video_url", "video_url": {"url": f"{url}/{VIDEO}"}}],
        [{"type": "video", "path": str(media / VIDEO)}],
    ),
}
AUDIO_VISUAL_CASES = {
    "input_audio": lambda media, url: (
        [
            {
                "type": "input_audio",
                "input_audio": {"data": base64.b64encode((media / AUDIO).read_bytes()).decode(), "format": "wav"},
            }
        ],
        [{"type": "audio", "path": str(media / AUDIO)}],
    ),
    "video heard with its sound": lambda media, url: (
        [{"type": "video_url", "video_url": {"url": str(media / VIDEO)}}],
        [{"type": "video", "path": str(media / VIDEO)}],
    ),
    "image": lambda media, url: (
        [{"type": "image_url", "image_url": {"url": str(media / IMAGE)}}],
        [{"type": "image", "path": str(media / IMAGE)}],
    ),
}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("case", list(VISION_CASES))
def test_vision_checkpoint_answers_as_generate(vision, media_dir, media_url, case, stream):
    """Images and videos (8 frames: the checkpoint's count, not the server's 32); never heard (a vision-only model
    is image-text-to-text, so no sound is forced on its videos)."""
    content, items = VISION_CASES[case](media_dir, media_url)
    assert vision.ask(content, stream) == vision.direct(items)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("case", list(AUDIO_VISUAL_CASES))
def test_audio_visual_checkpoint_hears_audio_and_videos(audio_visual, media_dir, media_url, case, stream):
    """OpenAI's `input_audio` (base64 WAV) reaches the audio-visual model (multimodal), and its videos are heard
    with their sound, 16 frames each."""
    content, items = AUDIO_VISUAL_CASES[case](media_dir, media_url)
    assert audio_visual.ask(content, stream) == audio_visual.direct(items)


def test_frame_count_of_a_request(vision, media_dir):
    """A request's `chat_template_kwargs` (the SDK's `extra_body`) set another frame count."""
    content = [{"type": "video_url", "video_url": {"url": str(media_dir / VIDEO)}}]
    served = vision.ask(content, stream=False, extra_body={"chat_template_kwargs": {"num_frames": 4}})
    assert served == vision.direct([{"type": "video", "path": str(media_dir / VIDEO)}], num_frames=4)
    assert served[1] < vision.direct([{"type": "video", "path": str(media_dir / VIDEO)}])[1]


BAD_REQUESTS = {
    "missing video": (
        lambda media: [{"type": "video_url", "video_url": {"url": str(media / "missing.mp4")}}],
        "No video file or frame folder at",
    ),
    "image as a video": (
        lambda media: [{"type": "video_url", "video_url": {"url": str(media / IMAGE)}}],
        "is an image, not a video",
    ),
    "missing image": (
        lambda media: [{"type": "image_url", "image_url": {"url": str(media / "missing.jpg")}}],
        "No image file at",
    ),
    "unreachable URL": (
        lambda media: [{"type": "video_url", "video_url": {"url": "http://127.0.0.1:9/clip.mp4"}}],
        "Could not download http://127.0.0.1:9/clip.mp4",
    ),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS))
def test_bad_request_is_a_400_with_one_line_and_the_server_goes_on(vision, media_dir, case):
    content, fragment = BAD_REQUESTS[case]
    with pytest.raises(openai.BadRequestError) as caught:
        vision.ask(content(media_dir), stream=False)
    detail = caught.value.body["detail"]
    assert caught.value.status_code == 400 and fragment in detail and "\n" not in detail
    assert vision.ask([], stream=False) == vision.direct([])  # the next request, on the same client


def test_missing_audio_file_on_the_audio_visual_checkpoint(audio_visual, media_dir):
    content = [{"type": "audio_url", "audio_url": {"url": str(media_dir / "missing.wav")}}]
    with pytest.raises(openai.BadRequestError) as caught:
        audio_visual.ask(content, stream=False)
    assert "No audio or video file at" in caught.value.body["detail"]
    assert audio_visual.ask([], stream=True) == audio_visual.direct([])


def test_serve_arguments():
    """The defaults that differ from `transformers serve`: 127.0.0.1, and the checkpoint's frame count (`None`
    lets the video processor use its own) unless `--chat-template-kwargs` sets one."""
    assert serve_arguments("folder", ["--port", "8001"]) == [
        "folder",
        "--host",
        "127.0.0.1",
        "--chat-template-kwargs",
        '{"num_frames": null}',
        "--port",
        "8001",
    ]
    given = serve_arguments("folder", ["--host=0.0.0.0", "--chat-template-kwargs", '{"num_frames": 4, "x": 1}'])
    assert given == ["folder", "--chat-template-kwargs", '{"num_frames": 4, "x": 1}', "--host=0.0.0.0"]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--trust-remote-code"], "drop --trust-remote-code"),
        (["--chat-template-kwargs", "{"], "--chat-template-kwargs is not valid JSON"),
        (["--chat-template-kwargs", "[1]"], "--chat-template-kwargs must be a JSON object"),
        (["--no-such-option"], "No such option: --no-such-option"),
    ],
)
def test_serve_usage_errors_are_one_line(vision_folder, capsys, argv, fragment):
    code = cli.main(["serve", str(vision_folder), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        code in (1, 2) and len(err) == 1 and err[0].startswith("videollama2-hf serve: error: ") and fragment in err[0]
    )


def test_serve_refuses_what_is_not_a_converted_checkpoint(tmp_path, capsys):
    assert cli.main(["serve", str(tmp_path / "missing")]) == 1
    assert "No such model folder" in capsys.readouterr().err


def test_missing_serving_dependencies_are_one_line(vision_folder):
    """Without transformers' serving dependencies (here made unimportable), one line naming the extra to install."""
    script = (
        "import importlib.abc, sys\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('fastapi', 'uvicorn'):\n"
        "            raise ModuleNotFoundError(name, name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from videollama2_hf.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "serve", str(vision_folder)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "videollama2-hf serve: error: videollama2-hf serve needs transformers' serving dependencies (fastapi is "
        'missing): pip install "videollama2-hf[serve]"'
    )
