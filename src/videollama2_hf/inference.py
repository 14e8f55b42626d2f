# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Library side of `videollama2-hf ask` and `videollama2-hf info`: load a checkpoint, answer a question about a
video or an image (streaming the answer), and describe a checkpoint folder cheaply from its metadata."""

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


DEFAULT_MODEL = "DAMO-NLP-SG/VideoLLaMA2-7B-16F"
DTYPES = ("auto", "float32", "bfloat16", "float16")


class ModelNotFoundError(OSError):
    """The model could be found neither locally nor on the Hub; the message says how to fix it."""


def _not_found_message(model_id: str, error: Exception) -> str:
    from huggingface_hub import constants

    offline = constants.HF_HUB_OFFLINE
    where = "the Hub is unreachable (HF_HUB_OFFLINE is set)" if offline else "it could not be downloaded"
    return (
        f"Cannot load model {model_id!r}: it is not a local folder and {where} ({type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else 'no details'}).\n"
        "Point --model at a local folder: a converted checkpoint (`videollama2-hf convert`) or a released "
        "DAMO-NLP-SG checkpoint downloaded beforehand, e.g.\n"
        f"  hf download {model_id} --local-dir ./{model_id.split('/')[-1]}\n"
        f'  videollama2-hf ask --model ./{model_id.split("/")[-1]} --video clip.mp4 "What happens?"'
    )


def resolve_dtype(dtype: str):
    import torch

    if dtype not in DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}.")
    return "auto" if dtype == "auto" else getattr(torch, dtype)


def resolve_device(device: str | None) -> str:
    """`auto` -> `cuda` when a GPU is visible, else `cpu`; anything else is passed through."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_model_and_processor(model_id: str = DEFAULT_MODEL, dtype: str = "auto", device: str | None = "auto"):
    """A VideoLLaMA2 model and its processor from a converted folder/repo or a released (original-layout) one."""
    from transformers import AutoConfig, AutoModelForImageTextToText

    from . import VideoLlama2Config, VideoLlama2Processor  # registers the Auto classes
    from .original_checkpoint import is_original_checkpoint, load_original_config

    model_id = str(model_id)
    is_local = os.path.isdir(model_id)
    if not is_local and (model_id.startswith(("/", ".", "~")) or model_id.count("/") > 1 or os.path.exists(model_id)):
        raise ModelNotFoundError(f"No such model folder: {model_id}")
    try:
        config = AutoConfig.from_pretrained(model_id)  # fails fast (and cheaply) when the model cannot be found
    except OSError as error:
        if is_local:
            raise
        raise ModelNotFoundError(_not_found_message(model_id, error)) from None
    except ValueError:  # e.g. a release whose config.json says model_type "qwen2" (VideoLLaMA2-72B)
        config = None
    if not isinstance(config, VideoLlama2Config):
        if not is_original_checkpoint(model_id):
            raise ValueError(f"{model_id} is not a VideoLLaMA2 checkpoint (config: {type(config).__name__}).")
        config = load_original_config(model_id)
    device = resolve_device(device)
    model = AutoModelForImageTextToText.from_pretrained(
        model_id, config=config, dtype=resolve_dtype(dtype), device_map=device
    )
    processor = VideoLlama2Processor.from_pretrained(model_id)  # also reads the original layout
    return model.eval(), processor


def build_messages(question: str, video=None, image=None) -> list[dict]:
    """One user turn: the video or image first (as the original prompt has it), then the question."""
    if (video is None) == (image is None):
        raise ValueError("Give exactly one of a video and an image.")
    media = {"type": "video", "path": str(video)} if video is not None else {"type": "image", "path": str(image)}
    return [{"role": "user", "content": [media, {"type": "text", "text": question}]}]


def ask(
    model,
    processor,
    question: str,
    video=None,
    image=None,
    num_frames: int | None = None,
    max_new_tokens: int = 512,
    do_sample: bool = False,
    temperature: float | None = None,
    top_p: float | None = None,
    streamer=None,
) -> str:
    """Answer `question` about a video or image file; greedy unless `do_sample`. `streamer` (e.g. a
    `TextStreamer`) receives the answer while it is generated."""
    import torch

    for path in (video, image):
        if path is not None and not str(path).startswith(("http://", "https://")) and not os.path.isfile(path):
            raise FileNotFoundError(f"No such file: {path}")
    processor_kwargs = {} if num_frames is None else {"num_frames": num_frames}
    inputs = processor.apply_chat_template(
        build_messages(question, video, image),
        add_generation_prompt=True,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        processor_kwargs=processor_kwargs,
    ).to(model.device)
    generate_kwargs = {"max_new_tokens": max_new_tokens, "do_sample": do_sample, "streamer": streamer}
    if do_sample:
        generate_kwargs.update({k: v for k, v in (("temperature", temperature), ("top_p", top_p)) if v is not None})
    with torch.inference_mode():
        output = model.generate(**inputs, **generate_kwargs)
    return processor.post_process_image_text_to_text(output[:, inputs["input_ids"].shape[1] :])[0]


# --- info --------------------------------------------------------------------------------------------------------

_COMPONENTS = (
    ("vision tower", "model.vision_tower."),
    ("projector", "model.multi_modal_projector."),
    ("language model", "model.language_model."),
    ("lm head", "lm_head."),
)


@dataclass
class CheckpointInfo:
    path: str
    layout: str  # "transformers" or "original"
    architecture: str
    backbone: str
    vision_tower: str
    projector: str
    num_frames: int
    tokens_per_video: int
    parameters: dict = field(default_factory=dict)  # component -> count
    dtypes: dict = field(default_factory=dict)  # dtype -> number of parameters
    weight_files: list = field(default_factory=list)

    @property
    def tokens_per_image(self) -> int:
        """An image is a clip of `num_frames` identical frames, so it costs as many tokens as a video."""
        return self.tokens_per_video


def _weight_shapes(folder: Path) -> tuple[dict, list[str]]:
    """name -> (dtype, shape) from every safetensors header (and `*.bin` projector files of Base checkpoints)."""
    from .convert_videollama2_weights_to_hf import read_safetensors_header

    tensors, files = {}, []
    for path in sorted(folder.glob("*.safetensors")):
        header = read_safetensors_header(path)
        tensors.update({name: (dtype, shape) for name, (dtype, shape, _, _) in header.tensors.items()})
        files.append(path.name)
    for path in sorted(folder.glob("*.bin")):
        import torch

        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
        tensors.update({name: (str(t.dtype).removeprefix("torch."), list(t.shape)) for name, t in state.items()})
        files.append(path.name)
    return tensors, files


def describe_checkpoint(folder) -> CheckpointInfo:
    """Architecture, token counts and per-component parameter counts of a checkpoint folder, from config.json and
    the weight files' headers only (nothing is loaded)."""
    import math

    from .configuration_videollama2 import VideoLlama2Config
    from .convert_videollama2_weights_to_hf import convert_config, convert_original_key
    from .original_checkpoint import is_original_config, resolve_vision_tower

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder (info reads a local checkpoint folder).")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json: not a checkpoint folder.")
    raw = json.loads((folder / "config.json").read_text())
    original = is_original_config(raw)
    if original:
        tower = resolve_vision_tower(raw, folder, local_files_only=True)
        config = VideoLlama2Config(**convert_config(raw, tower["vision_config"], 0, 1))
        vision_name = raw["mm_vision_tower"]
    elif raw.get("model_type") == VideoLlama2Config.model_type:
        config = VideoLlama2Config.from_dict(raw)
        vision_name = config.vision_config.model_type
    else:
        raise ValueError(f"{folder} is not a VideoLLaMA2 checkpoint (model_type {raw.get('model_type')!r}).")

    tensors, files = _weight_shapes(folder)
    parameters = {name: 0 for name, _ in _COMPONENTS}
    dtypes = {}
    for name, (dtype, shape) in tensors.items():
        if original:
            try:
                name = convert_original_key(name)
            except KeyError:
                pass
        count = math.prod(shape)
        component = next((label for label, prefix in _COMPONENTS if name.startswith(prefix)), "other")
        parameters[component] = parameters.get(component, 0) + count
        dtypes[dtype] = dtypes.get(dtype, 0) + count
    parameters["total"] = sum(parameters.values())
    return CheckpointInfo(
        path=str(folder),
        layout="original" if original else "transformers",
        architecture=(raw.get("architectures") or ["VideoLlama2ForConditionalGeneration"])[0],
        backbone=f"{config.text_config.model_type} ({config.text_config.num_hidden_layers} layers, "
        f"hidden {config.text_config.hidden_size}, vocab {config.text_config.vocab_size})",
        vision_tower=f"{vision_name} ({config.vision_config.image_size}px, patch {config.vision_config.patch_size})",
        projector=config.projector_type,
        num_frames=config.num_frames,
        tokens_per_video=config.get_num_visual_tokens(),
        parameters=parameters,
        dtypes=dtypes,
        weight_files=files,
    )


def _human(count: int) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= size:
            return f"{count / size:.2f}{unit}"
    return str(count)


def format_checkpoint_info(info: CheckpointInfo) -> str:
    rows = [
        ("path", info.path),
        ("layout", info.layout),
        ("architecture", info.architecture),
        ("backbone", info.backbone),
        ("vision tower", info.vision_tower),
        ("projector", info.projector),
        ("frames per video", str(info.num_frames)),
        ("tokens per video", str(info.tokens_per_video)),
        ("tokens per image", f"{info.tokens_per_image} (an image is a clip of {info.num_frames} identical frames)"),
        ("dtype", ", ".join(f"{dtype} ({_human(n)})" for dtype, n in info.dtypes.items()) or "no weights found"),
        ("weight files", f"{len(info.weight_files)}"),
    ]
    rows += [(f"params: {name}", f"{_human(n)} ({n:,})") for name, n in info.parameters.items()]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


__all__ = [
    "DEFAULT_MODEL",
    "CheckpointInfo",
    "ModelNotFoundError",
    "ask",
    "build_messages",
    "describe_checkpoint",
    "format_checkpoint_info",
    "load_model_and_processor",
]
