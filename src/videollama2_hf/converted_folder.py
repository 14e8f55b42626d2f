# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""A converted folder as an artefact: the files it holds besides the weights (config, generation defaults, processor,
tokenizer, chat template, remote code, model card), written by the classes' own `save_pretrained`; how an earlier
conversion is recognised; and how a new folder replaces it without ever touching files a conversion did not write.
"""

import json
import logging
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

from .original_layout import convert_config, load_original_tokenizer
from .remote_code import (
    AUTO_CLASSES_OF_PROCESSOR_PARTS,
    MODEL_AUTO_MAP,
    VQA_PIPELINE_ENTRY,
    VQA_TASK,
    copy_remote_code,
    remote_code_files,
)
from .token_counts_videollama2 import FBANK_MEL_BINS, num_audio_tokens, num_fbank_frames, num_visual_tokens


logger = logging.getLogger(f"transformers.{__name__}")


@dataclass
class FolderMetadata:
    source: str
    source_repo: str | None
    kind: str
    original_config: dict
    vision_config: dict
    image_processor: dict
    vision_tower_id: str
    generation: dict  # generation defaults of the language-model family
    preset_name: str | None
    tokenizer_dir: Path
    language_model: str | None
    dtype: str
    num_tensors: int
    total_bytes: int
    num_shards: int
    output_name: str
    vision_tower_source: str | None = None  # the --vision-tower folder / repo the tower settings came from
    repo_id: str | None = None
    audio_config: dict | None = None  # audio-visual releases: the audio encoder's sizes (read from its weights)


MODEL_CARD_TEMPLATE = Path(__file__).resolve().parent / "templates" / "model_card.md"


def write_metadata(meta: FolderMetadata, folder: Path, should_stop) -> dict:
    """config.json, generation_config.json, processor and tokenizer files, chat template, remote code, README.md,
    each written by its class's `save_pretrained` (which imports torch: the processors need it)."""
    from transformers import GenerationConfig

    from .configuration_videollama2 import VideoLlama2Config
    from .original_checkpoint import build_processor

    should_stop()
    audio = meta.audio_config is not None
    tokenizer = load_original_tokenizer(str(meta.tokenizer_dir), audio=audio)
    token_ids = {
        name: tokenizer.convert_tokens_to_ids(f"<{name}>") for name in ("image", "video", "audio")[: 2 + audio]
    }
    settings = convert_config(
        meta.original_config, meta.vision_config, *token_ids.values(), audio_config=meta.audio_config
    )
    config = VideoLlama2Config(**settings, dtype=meta.dtype)
    config.architectures = ["VideoLlama2ForConditionalGeneration"]
    config.auto_map = dict(MODEL_AUTO_MAP)
    config.custom_pipelines = {VQA_TASK: dict(VQA_PIPELINE_ENTRY)}
    config.save_pretrained(folder)
    should_stop()
    processor = build_processor(tokenizer, meta.image_processor, settings)
    # remote code: registered classes get their auto_map entries and their files from `save_pretrained`
    type(processor).register_for_auto_class("AutoProcessor")
    for part, auto_class in AUTO_CLASSES_OF_PROCESSOR_PARTS.items():
        if getattr(processor, part, None) is not None:
            type(getattr(processor, part)).register_for_auto_class(auto_class)
    processor.save_pretrained(folder)
    copy_remote_code(folder, audio=audio)
    GenerationConfig(**meta.generation).save_pretrained(folder)
    (folder / "README.md").write_text(_model_card(meta, settings))
    return {f"{name}_token_id": token_id for name, token_id in token_ids.items()}


def _audio_card_line(config: dict) -> str:
    """The model card's line on the audio encoder of an audio-visual checkpoint (nothing for the others)."""
    if "audio_config" not in config:
        return ""
    audio = config["audio_config"]
    tokens = num_audio_tokens(num_fbank_frames(), FBANK_MEL_BINS, audio["patch_size"])
    return (
        f"- **Audio**: BEATs encoder ({audio['num_hidden_layers']} layers, width {audio['hidden_size']}) and a "
        f"{config.get('audio_projector_depth', 2)}-layer MLP projector; an audio file (30 s) or a video's sound "
        f"becomes {tokens} tokens, placed after the video's tokens; placeholder `<audio>` = "
        f"{config['audio_token_id']}\n"
    )


def _model_card(meta: FolderMetadata, config: dict) -> str:
    text, vision = config["text_config"], config["vision_config"]
    families = {"mistral": "Mistral", "mixtral": "Mixtral (mixture of experts)", "qwen2": "Qwen2"}
    kind = "chat model"
    if meta.kind == "base":
        kind = "stage-1 (Base) model: the pre-trained connector, with the vision tower and language model it was "
        kind += "trained on"
    source = (
        f"[{meta.source_repo}](https://huggingface.co/{meta.source_repo})" if meta.source_repo else f"`{meta.source}`"
    )
    grid = vision["image_size"] // vision["patch_size"]
    return Template(MODEL_CARD_TEMPLATE.read_text()).substitute(
        base_model=f"base_model: {meta.source_repo}\n" if meta.source_repo else "",
        title=meta.output_name,
        kind=kind,
        source=source,
        preset=meta.preset_name or "none (settings derived from config.json)",
        family=families.get(text["model_type"], text["model_type"]),
        language_model=f" (from `{meta.language_model}`)" if meta.language_model else "",
        num_layers=text["num_hidden_layers"],
        hidden_size=text["hidden_size"],
        vocab_size=text["vocab_size"],
        vision_tower=meta.vision_tower_id,
        vision_type=vision["model_type"],
        image_size=vision["image_size"],
        patch_size=vision["patch_size"],
        tower_from=f", settings from `{meta.vision_tower_source}`" if meta.vision_tower_source else "",
        projector_type=config["projector_type"],
        num_frames=config["num_frames"],
        tokens=num_visual_tokens(config["projector_type"], grid, config["num_frames"]),
        audio=_audio_card_line(config),
        image_token_id=config["image_token_id"],
        video_token_id=config["video_token_id"],
        num_tensors=meta.num_tensors,
        gigabytes=f"{meta.total_bytes / 1e9:.2f}",
        num_shards=meta.num_shards,
        dtype=meta.dtype,
        generation=json.dumps(meta.generation),
        example=meta.repo_id or f"your-name/{meta.output_name}",
    )


# What a conversion writes: `--overwrite` replaces a folder only if it holds nothing else (or nothing at all).
_CONVERSION_FILE_PATTERN = re.compile(
    r"model(-\d{5}-of-\d{5})?\.safetensors|model\.safetensors\.index\.json|config\.json|generation_config\.json"
    r"|processor_config\.json|preprocessor_config\.json|video_preprocessor_config\.json|chat_template\.(jinja|json)"
    r"|tokenizer(_config)?\.json|tokenizer\.model|special_tokens_map\.json|added_tokens\.json|vocab\.json"
    r"|merges\.txt|README\.md"
    r"|modeling_beats\.py"  # the audio encoder's code file before it became modeling_videollama2_audio.py
)
_HUB_UPLOAD_CACHE = ".cache"  # left in a folder by huggingface_hub's upload_large_folder (--push-to-hub)


def _foreign_entries(output_dir: Path) -> list[str]:
    """Entries of an existing output folder that no conversion writes (all of them if it is not a conversion)."""
    entries = sorted(output_dir.iterdir())
    config = output_dir / "config.json"
    try:
        is_conversion = json.loads(config.read_text()).get("model_type") == "videollama2"
    except (OSError, ValueError, AttributeError):
        is_conversion = False
    if not is_conversion:
        return [entry.name + ("/" if entry.is_dir() else "") for entry in entries]
    foreign, code_files = [], remote_code_files()
    for entry in entries:
        if entry.name == _HUB_UPLOAD_CACHE and entry.is_dir() and {p.name for p in entry.iterdir()} <= {"huggingface"}:
            continue
        written = _CONVERSION_FILE_PATTERN.fullmatch(entry.name) or entry.name in code_files
        if entry.is_symlink() or not entry.is_file() or not written:
            foreign.append(entry.name + ("/" if entry.is_dir() else ""))
    return foreign


def check_destination(output_dir: Path, overwrite: bool) -> None:
    """Refuse any output folder whose replacement would delete something a conversion did not write."""
    if not (output_dir.exists() or output_dir.is_symlink()):
        return
    if output_dir.is_symlink() or not output_dir.is_dir():
        raise FileExistsError(f"{output_dir} exists and is not a folder; choose another output folder.")
    mode = stat.S_IMODE(output_dir.stat().st_mode)
    if not mode & stat.S_IWUSR or not os.access(output_dir, os.W_OK):  # the mode bits bind root too, here
        raise PermissionError(
            f"{output_dir} is read-only (mode {mode:o}), and a conversion does not replace a folder its owner "
            f"protected: make it writable (chmod u+w {output_dir}) or choose another output folder."
        )
    if not any(output_dir.iterdir()):
        return
    if not overwrite:
        raise FileExistsError(
            f"{output_dir} is not empty; pass --overwrite (overwrite=True) to replace an earlier conversion there, "
            "or choose another output folder."
        )
    foreign = _foreign_entries(output_dir)
    if foreign:
        listed = ", ".join(foreign[:8]) + (f" and {len(foreign) - 8} more" if len(foreign) > 8 else "")
        raise FileExistsError(
            f"Refusing to overwrite {output_dir}: it holds {listed}, which no conversion wrote. --overwrite only "
            "replaces an earlier conversion's output; choose a new or empty output folder."
        )
    cwd = Path.cwd().resolve()
    if cwd == output_dir.resolve() or output_dir.resolve() in cwd.parents:
        raise FileExistsError(
            f"Refusing to replace {output_dir}: it is (or holds) the current working directory. Run the command "
            "from another folder."
        )


def publish(tmp: Path, output_dir: Path, overwrite: bool) -> None:
    """Move the finished folder into place (a rename on the same filesystem); an earlier conversion it replaces is
    renamed aside first and deleted only once the new one is in place."""
    if output_dir.is_dir() and not output_dir.is_symlink() and not any(output_dir.iterdir()):
        os.chmod(tmp, stat.S_IMODE(output_dir.stat().st_mode))  # the empty folder's permissions carry over
        output_dir.rmdir()
    if not output_dir.exists():
        os.rename(tmp, output_dir)
        return
    check_destination(output_dir, overwrite)  # changed while converting?
    old = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".replaced", dir=output_dir.parent))
    os.rename(output_dir, old / output_dir.name)
    try:
        os.rename(tmp, output_dir)
    except BaseException:
        os.rename(old / output_dir.name, output_dir)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


__all__ = ["FolderMetadata", "check_destination", "publish", "write_metadata"]
