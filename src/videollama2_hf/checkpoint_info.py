# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""`videollama2-hf info`: describe a checkpoint folder (converted or in the original layout) from its config.json and
the headers of its weight files. Nothing is loaded and no tensor library is imported, so it is instant even for 72B
(a torch pickle, the projector of a stage-1 release, is the one file that needs torch to be read)."""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from .original_layout import (
    COMPONENT_PREFIXES,
    audio_encoder_config,
    convert_config,
    convert_original_key,
    is_audio_visual,
    is_original_config,
    resolve_vision_tower,
)
from .safetensors_copy import indexed_weight_files, read_safetensors_header, source_tensors
from .token_counts_videollama2 import FBANK_MEL_BINS, num_audio_tokens, num_fbank_frames, num_visual_tokens


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
    tokens_per_audio: int | None = None  # audio-visual checkpoints: an audio file, or a video's sound
    parameters: dict = field(default_factory=dict)  # component -> count
    dtypes: dict = field(default_factory=dict)  # dtype -> number of parameters
    weight_files: list = field(default_factory=list)

    @property
    def tokens_per_image(self) -> int:
        """An image is a clip of `num_frames` identical frames, so it costs as many tokens as a video."""
        return self.tokens_per_video


def _weight_shapes(folder: Path) -> tuple[dict, list[str]]:
    """name -> (dtype, shape) from every safetensors header (or the `*.bin` projector file of a Base checkpoint). A
    shard its index lists but the folder lacks (an incomplete download) is an error naming it."""
    indexed_weight_files(folder)
    tensors, files = {}, []
    for path in sorted(folder.glob("*.safetensors")):
        header = read_safetensors_header(path)
        tensors.update({name: (dtype, shape) for name, (dtype, shape, _, _) in header.tensors.items()})
        files.append(path.name)
    for path in [] if files else sorted(folder.glob("*.bin")):  # beside shards, .bin files repeat them (AV release)
        tensors.update({t.source_key: (t.dtype, t.shape) for t in source_tensors(path, lambda key: key, [])})
        files.append(path.name)
    return tensors, files


def describe_checkpoint(folder) -> CheckpointInfo:
    """Architecture, token counts and per-component parameter counts of a local checkpoint folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder (info reads a local checkpoint folder).")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json: not a checkpoint folder.")
    try:
        raw = json.loads((folder / "config.json").read_text())
    except ValueError as error:
        raise ValueError(f"{folder / 'config.json'} is not valid JSON ({error}).") from None
    original = is_original_config(raw)
    tensors, files = _weight_shapes(folder)
    if original:
        tower = resolve_vision_tower(raw, folder, local_files_only=True)
        shapes = {name: shape for name, (_, shape) in tensors.items()}
        audio = audio_encoder_config(shapes) if is_audio_visual(raw) else None
        config = convert_config(raw, tower["config"], 0, 1, audio_token_id=2, audio_config=audio)
        vision_name = raw["mm_vision_tower"]
    elif raw.get("model_type") == "videollama2":
        config = raw
        vision_name = config["vision_config"]["model_type"]
    else:
        raise ValueError(f"{folder} is not a VideoLLaMA2 checkpoint (model_type {raw.get('model_type')!r}).")
    text, vision = config["text_config"], config["vision_config"]
    audio = config.get("audio_config")
    parameters = {name: 0 for name in COMPONENT_PREFIXES if audio is not None or not name.startswith("audio")}
    dtypes = {}
    for name, (dtype, shape) in tensors.items():
        count = math.prod(shape)
        component = "other"
        if original:
            try:
                name = convert_original_key(name)
            except KeyError:
                pass
            if name is None:  # no model part reads it (BEATs' classifier head, aliases of its shared position table)
                name, component = "", "not converted"
        component = next((label for label, prefix in COMPONENT_PREFIXES.items() if name.startswith(prefix)), component)
        parameters[component] = parameters.get(component, 0) + count
        dtypes[dtype] = dtypes.get(dtype, 0) + count
    parameters["total"] = sum(parameters.values())
    grid = vision["image_size"] // vision["patch_size"]
    downsample = [config["projector_downsample"]] if "projector_downsample" in config else []
    return CheckpointInfo(
        path=str(folder),
        layout="original" if original else "transformers",
        architecture=(raw.get("architectures") or ["VideoLlama2ForConditionalGeneration"])[0],
        backbone=f"{text['model_type']} ({text['num_hidden_layers']} layers, hidden {text['hidden_size']}, "
        f"vocab {text['vocab_size']})",
        vision_tower=f"{vision_name} ({vision['image_size']}px, patch {vision['patch_size']})",
        projector=config["projector_type"],
        num_frames=config["num_frames"],
        tokens_per_video=num_visual_tokens(config["projector_type"], grid, config["num_frames"], *downsample),
        tokens_per_audio=None
        if audio is None
        else num_audio_tokens(
            num_fbank_frames(), audio.get("num_mel_bins", FBANK_MEL_BINS), audio.get("patch_size", 16)
        ),
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
        *([("tokens per audio", f"{info.tokens_per_audio} (30 s of sound)")] if info.tokens_per_audio else []),
        ("dtype", ", ".join(f"{dtype} ({_human(n)})" for dtype, n in info.dtypes.items()) or "no weights found"),
        ("weight files", f"{len(info.weight_files)}"),
    ]
    rows += [(f"params: {name}", f"{_human(n)} ({n:,})") for name, n in info.parameters.items()]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


__all__ = ["CheckpointInfo", "describe_checkpoint", "format_checkpoint_info"]
