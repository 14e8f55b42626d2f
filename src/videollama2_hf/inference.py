# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""`videollama2-hf ask`: load a checkpoint and answer a question about a video, an image or (with an audio-visual
checkpoint) an audio file or a video with its sound, streaming the answer.

Cheap checks come first: the media (a video heard with its sound must have an audio track), the model folder (its
config.json, whether it has the audio tower the question needs, the headers of its weight files) and the device are
checked before any weight is read, so that a typo never costs a 7B load.
"""

import base64
import json
from pathlib import Path

from .hub import looks_like_repo_id
from .original_layout import is_audio_visual, is_original_config
from .safetensors_copy import indexed_weight_files, read_safetensors_header


DEFAULT_MODEL = "DAMO-NLP-SG/VideoLLaMA2-7B-16F"
DTYPES = ("auto", "float32", "bfloat16", "float16")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class ModelNotFoundError(OSError):
    """The model could be found neither locally nor on the Hub; the message says how to fix it."""


def _no_audio_tower(name: str) -> str:
    return (
        f"{name} has no audio tower, so it cannot hear audio: use an audio-visual checkpoint such as "
        "DAMO-NLP-SG/VideoLLaMA2.1-7B-AV, or ask without --audio/--with-audio."
    )


def load_media(video=None, image=None, audio=None, with_audio: bool = False) -> dict:
    """The chat-message item of one video, image or audio file (path, `file://` or `http(s)` URL, `data:` URI),
    checked (URLs downloaded, files decoded up to a first frame) before any model loads, with a one-line error for a
    file that is missing, empty, of the other kind or unreadable. `with_audio`: the video is heard with its sound, so
    it must have an audio track."""
    from .media_sources_videollama2 import media_source

    media = (("video", video), ("image", image), ("audio", audio))
    given = [(kind, source) for kind, source in media if source is not None]
    if len(given) != 1:
        raise ValueError("Give exactly one of a video, an image and an audio file.")
    (kind, source), hears_video = given[0], with_audio and video is not None
    if with_audio and kind != "video":
        raise ValueError("--with-audio hears the sound track of a video: pass the video with --video.")
    openable, name = media_source(str(source), kind)
    if isinstance(openable, str):  # a local path
        path = Path(openable).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"No such file: {path}")
        if kind != "video" and path.is_dir():
            raise ValueError(f"{path} is a folder; --{kind} takes a file.")
        if kind == "video" and path.is_dir() and hears_video:
            raise ValueError(f"{path} is a folder of frames, which has no sound: drop --with-audio.")
        if kind == "video" and path.suffix.lower() in IMAGE_EXTENSIONS:
            raise ValueError(f"{path} is an image, not a video: pass it with --image (image=...).")
        source = str(path)
    else:
        source = openable.getvalue()  # downloaded (or decoded) once, checked and used as bytes
    if kind == "image":
        picture = _check_image(source, name)
        return {"type": "image", "path": source} if isinstance(source, str) else {"type": "image", "image": picture}
    if kind == "video":
        _check_video(source)
    if kind == "audio" or hears_video:
        _check_audio_track(source, kind)
    if isinstance(source, str):
        return {"type": kind, "path": source}
    if kind == "audio":
        return {"type": "audio", "audio": source}
    # transformers passes videos of a chat on as strings (paths, URLs): the bytes travel as a data: URI
    return {"type": "video", "url": "data:;base64," + base64.b64encode(source).decode()}


def _check_image(source, name: str):
    from .image_processing_videollama2 import open_image
    from .video_decoding_videollama2 import is_video_file

    try:
        return open_image(source)
    except ValueError:
        if is_video_file(source):
            raise ValueError(f"{name} is a video, not an image: pass it with --video (videos=...).") from None
        raise


def _check_video(source) -> None:
    from .video_decoding_videollama2 import check_video

    check_video(source)


def _check_audio_track(source, kind: str) -> None:
    from .audio_decoding_videollama2 import check_audio_track

    check_audio_track(source, kind)


def check_model_folder(model_id: str, audio: bool = False) -> bool:
    """For a local folder (returns True): a readable config.json of a VideoLLaMA2 checkpoint (with an audio tower
    when `audio`) and complete weight files. Hub ids (returns False) are checked by the download.

    A path that does not exist is "no such folder" at once, not a Hub id to look up: anything a Hub id cannot be
    (`./x`, `/x`, `~/x`, `a/b/c`, a name with spaces, ...), and `out/x` where a folder `out` exists here."""
    path = Path(model_id).expanduser()
    if not path.is_dir():
        local_parent = path.parent != Path(".") and path.parent.is_dir()
        if path.exists() or local_parent or not looks_like_repo_id(str(model_id)):
            where = f" ({path.parent} holds no {path.name})" if local_parent and not path.exists() else ""
            raise ModelNotFoundError(
                f"No such model folder: {model_id}{where}. Pass a converted or downloaded checkpoint folder, or a "
                "Hub repo id (organization/name)."
            )
        return False
    try:
        config = json.loads((path / "config.json").read_text())
    except FileNotFoundError:
        raise ModelNotFoundError(f"{path} has no config.json: not a checkpoint folder.") from None
    except ValueError as error:
        raise ValueError(f"{path / 'config.json'} is not valid JSON ({error}).") from None
    if config.get("model_type") != "videollama2" and not is_original_config(config):
        raise ValueError(
            f"{path} is not a VideoLLaMA2 checkpoint (config.json has model_type {config.get('model_type')!r}); "
            "pass a converted folder or a released DAMO-NLP-SG checkpoint."
        )
    if audio and config.get("audio_config") is None and not is_audio_visual(config):
        raise ValueError(_no_audio_tower(str(path)))
    indexed_weight_files(path)  # a shard missing from a download fails here, with the file named
    for shard in sorted(path.glob("*.safetensors")):
        read_safetensors_header(shard)  # a truncated download fails here, with the file named
    return True


def _not_found_message(model_id: str, error: Exception) -> str:
    from huggingface_hub import constants

    where = "it could not be downloaded"
    if constants.HF_HUB_OFFLINE:
        where = "the Hub is unreachable (HF_HUB_OFFLINE is set)"
    details = str(error).splitlines()[0] if str(error) else "no details"
    name = model_id.split("/")[-1]
    return (
        f"Cannot load model {model_id!r}: it is not a local folder and {where} ({type(error).__name__}: {details}). "
        f"Download it first (`hf download {model_id} --local-dir ./{name}`) and pass --model ./{name}."
    )


def resolve_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}.")
    return "auto" if dtype == "auto" else getattr(torch, dtype)


def resolve_device(device: str | None) -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu`; a named device must exist."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device).type
    except RuntimeError:
        raise ValueError(f"Unknown device {device!r}; use cpu, cuda, cuda:N or mps.") from None
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": torch.backends.mps.is_available()}
    if not available.get(kind, True):
        raise ValueError(f"--device {device}: no {kind.upper()} device is available here; use --device cpu.")
    return device


def load_model_and_processor(
    model_id: str = DEFAULT_MODEL, dtype: str = "auto", device: str | None = "auto", audio: bool = False
):
    """A VideoLLaMA2 model and its processor from a converted folder/repo or a released (original-layout) one;
    `audio`: the model must have an audio tower (checked before the weights are read)."""
    model_id = str(model_id)
    is_local = check_model_folder(model_id, audio=audio)
    device = resolve_device(device)
    from transformers import AutoConfig, AutoModelForImageTextToText

    from .configuration_videollama2 import VideoLlama2Config
    from .original_checkpoint import load_original_config, load_original_processor
    from .original_layout import is_original_config, read_json
    from .processing_videollama2 import VideoLlama2Processor

    try:
        config = AutoConfig.from_pretrained(model_id)  # fails fast (and cheaply) when the model cannot be found
    except OSError as error:
        if is_local:
            raise
        raise ModelNotFoundError(_not_found_message(model_id, error)) from None
    except ValueError:  # e.g. a release whose config.json says model_type "qwen2" (VideoLLaMA2-72B)
        config = None
    if not isinstance(config, VideoLlama2Config):
        config = load_original_config(model_id)
    if audio and config.audio_config is None:
        raise ValueError(_no_audio_tower(model_id))
    model = AutoModelForImageTextToText.from_pretrained(
        model_id, config=config, dtype=resolve_dtype(dtype), device_map=device
    )
    if is_original_config(read_json(model_id, "config.json")):  # a release: no processor files
        processor = load_original_processor(model_id)
    else:
        processor = VideoLlama2Processor.from_pretrained(model_id)
    return model.eval(), processor


def build_messages(question: str, media: dict, with_audio: bool = False) -> list[dict]:
    """One user turn: the video, image or audio first (as the original prompt has it), then the question. A video
    heard with its sound is followed by the empty audio item transformers asks for (`load_audio_from_video=True`)."""
    sound = [{"type": "audio"}] if with_audio and media["type"] == "video" else []
    return [{"role": "user", "content": [media, *sound, {"type": "text", "text": question}]}]


def ask(
    model,
    processor,
    question: str,
    video=None,
    image=None,
    audio=None,
    with_audio: bool = False,
    num_frames: int | None = None,
    max_new_tokens: int = 512,
    do_sample: bool = False,
    temperature: float | None = None,
    top_p: float | None = None,
    streamer=None,
) -> str:
    """Answer `question` about a video, image or audio file (path, URL, or a `load_media` item); greedy unless
    `do_sample`. `with_audio`: hear the video with its sound (audio-visual checkpoints). `streamer` (e.g. a
    `TextStreamer`) receives the answer while it is generated."""
    import torch

    if not question.strip():
        raise ValueError("The question is empty; ask something about the video, image or audio.")
    media = next((item for item in (video, image, audio) if isinstance(item, dict)), None)
    media = media or load_media(video, image, audio, with_audio=with_audio)
    processor_kwargs = {} if num_frames is None else {"num_frames": num_frames}
    inputs = processor.apply_chat_template(
        build_messages(question, media, with_audio),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        load_audio_from_video=with_audio,
        processor_kwargs=processor_kwargs,
    ).to(model.device)
    generate_kwargs = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "streamer": streamer}
    if do_sample:
        generate_kwargs.update({k: v for k, v in (("temperature", temperature), ("top_p", top_p)) if v is not None})
    with torch.inference_mode():
        output = model.generate(**inputs, **generate_kwargs)
    return processor.post_process_image_text_to_text(output[:, inputs["input_ids"].shape[1] :])[0]


__all__ = [
    "DEFAULT_MODEL",
    "ModelNotFoundError",
    "ask",
    "build_messages",
    "check_model_folder",
    "load_media",
    "load_model_and_processor",
]
