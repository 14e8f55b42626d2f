# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Plan a conversion: find a release's sources (local folders or Hub repos), rename and check their tensors from the
safetensors headers alone, and lay out the output shards and the metadata to write. Nothing is written here."""

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .converted_folder import FolderMetadata
from .hub import download, list_files, looks_like_repo_id
from .original_layout import (
    AUDIO_SHARED_TABLE_KEY,
    COMPONENT_PREFIXES,
    TOKENIZER_FILES,
    audio_encoder_config,
    backbone_defaults,
    convert_original_key,
    detect_preset,
    get_preset,
    is_audio_visual,
    known_vision_tower,
    language_model_type,
    resolve_vision_tower,
)
from .safetensors_copy import (
    Shard,
    SourceTensor,
    indexed_weight_files,
    parse_size,
    plan_shards,
    read_safetensors_header,
    source_tensors,
)


# A child of transformers' library logger without importing transformers (see convert_videollama2_weights_to_hf).
logger = logging.getLogger(f"transformers.{__name__}")


_PROJECTOR_FILE = "mm_projector.bin"


def _weight_files(directory: Path, what: str) -> list[Path]:
    """The weight files of a folder in the transformers layout (safetensors preferred over torch pickles)."""
    indexed = indexed_weight_files(directory, what)
    if indexed is not None:
        return indexed
    shards = sorted(directory.glob("model*.safetensors")) or sorted(directory.glob("pytorch_model*.bin"))
    if not shards:
        raise FileNotFoundError(
            f"No weights of {what} in {directory}: expected model*.safetensors (+ model.safetensors.index.json) or "
            "pytorch_model*.bin."
        )
    return shards


def _checkpoint_kind(directory: Path) -> str:
    """'chat' (full weights) or 'base' (stage-1: projector only)."""
    if any(directory.glob("model*.safetensors")):
        return "chat"
    if (directory / _PROJECTOR_FILE).is_file():
        return "base"
    if any(directory.glob("pytorch_model*.bin")):
        return "chat"
    raise FileNotFoundError(
        f"No VideoLLaMA2 weights in {directory}: expected model*.safetensors shards (chat checkpoints) or "
        f"{_PROJECTOR_FILE} (Base checkpoints)."
    )


def _hub_files(repo_id: str, revision: str | None, token, role: str) -> list[str]:
    """Which files of a Hub repo a conversion needs, by the role the repo plays."""
    files = list_files(repo_id, revision=revision, token=token)
    present = set(files)
    tokenizer = [name for name in TOKENIZER_FILES if name in present]
    # transformers-layout weights only (not e.g. a Mistral-native `consolidated.safetensors` beside them)
    safetensors = [name for name in files if re.fullmatch(r"model(-\d+-of-\d+)?\.safetensors", name)]
    pickles = [name for name in files if re.fullmatch(r"pytorch_model[\w.-]*\.bin(\.index\.json)?", name)]
    weights = safetensors + (["model.safetensors.index.json"] if "model.safetensors.index.json" in present else [])
    weights = weights if safetensors else pickles
    if role == "checkpoint":
        if "config.json" not in present:
            raise ValueError(f"{repo_id} has no config.json: it is not a VideoLLaMA2 checkpoint.")
        extra = [_PROJECTOR_FILE] if not safetensors and _PROJECTOR_FILE in present else weights
        return ["config.json", *tokenizer, *extra]
    if role == "vision":
        return [name for name in ("config.json", "preprocessor_config.json") if name in present] + weights
    return tokenizer + weights  # language model


def _resolve_folder(
    source: str | os.PathLike, role: str, revision: str | None = None, token=None
) -> tuple[Path, str | None]:
    """A local folder for `source` (downloading the needed files of a Hub repo) and the repo id, if any."""
    path = Path(source).expanduser()
    if path.exists():
        if not path.is_dir():
            raise NotADirectoryError(f"{source} is a file; pass the folder that holds config.json and the weights.")
        return path, None
    if not looks_like_repo_id(str(source)):
        hint = {"vision": " Pass --vision-tower.", "language-model": " Pass --language-model."}.get(role, "")
        raise FileNotFoundError(
            f"{source!r} ({role}) is neither an existing folder nor a Hub repo id of the form org/name.{hint}"
        )
    patterns = _hub_files(str(source), revision, token, role)
    logger.info("Downloading %d file(s) of %s: %s", len(patterns), source, ", ".join(patterns))
    return download(str(source), patterns, revision=revision, token=token), str(source)


def _rename_tower(key: str) -> str | None:
    """HF CLIPModel / SiglipModel (or *VisionModel) checkpoint -> HF name; text-tower keys are dropped."""
    if key.startswith("vision_model."):
        return convert_original_key("model.vision_tower.vision_tower." + key)
    return None


def _rename_audio_visual(key: str) -> str | None:
    """An audio-visual release's tensors, but for its copy of the vision tower (taken from the tower's repo)."""
    return None if key.startswith("model.vision_tower.") else convert_original_key(key)


def _check_shared_table_copies(paths: list[Path]) -> None:
    """BEATs' layers share one relative-position table, which the release stores under every layer; the conversion
    keeps one, so the copies must hold the same bytes."""
    copies = {}
    for path in paths:
        for key, (_, _, start, end) in read_safetensors_header(path).tensors.items():
            if AUDIO_SHARED_TABLE_KEY.match(key):
                with open(path, "rb") as handle:
                    handle.seek(start)
                    copies[key] = handle.read(end - start)
    if len(set(copies.values())) > 1:
        raise ValueError(
            f"The audio tower's relative-position tables differ between layers ({', '.join(sorted(copies))}): "
            "BEATs shares one table, so this is not a VideoLLaMA2.1-AV checkpoint this converter can read."
        )


def _rename_language_model(key: str) -> str:
    name = convert_original_key(key)
    if not (name.startswith("model.language_model.") or name == "lm_head.weight"):
        raise KeyError(key)
    return name


def _rename_projector(key: str) -> str:
    name = convert_original_key(key)
    if not name.startswith("model.multi_modal_projector."):
        raise KeyError(key)
    return name


def _raise_unknown(unknown: list, limit: int = 10) -> None:
    if not unknown:
        return
    listed = ", ".join(f"{key} ({path.name})" for path, key in unknown[:limit])
    more = f" and {len(unknown) - limit} more" if len(unknown) > limit else ""
    raise ValueError(
        f"{len(unknown)} tensor(s) of the source have no VideoLLaMA2 counterpart: {listed}{more}. This converter "
        "handles the VideoLLaMA2 / VideoLLaMA2.1 checkpoints (Mistral, Mixtral, Qwen2 with a CLIP or SigLIP tower, "
        "and the audio-visual VideoLLaMA2.1-AV); check that --vision-tower / --language-model point at the right "
        "repositories."
    )


def _check_shapes(tensors: dict[str, SourceTensor], vision_config: dict, original_config: dict) -> None:
    vision = vision_config.get("vision_config", vision_config)
    problems = []
    patch = tensors.get("model.vision_tower.embeddings.patch_embedding.weight")
    position = tensors.get("model.vision_tower.embeddings.position_embedding.weight")
    layers = {
        int(match.group(1))
        for name in tensors
        if (match := re.match(r"model\.vision_tower\.encoder\.layers\.(\d+)\.", name))
    }
    if patch is not None:
        hidden, _, patch_size, _ = patch.shape
        for key, value in (("hidden_size", hidden), ("patch_size", patch_size)):
            if key in vision and vision[key] != value:
                problems.append(f"vision {key} {vision[key]} in the tower config, {value} in the weights")
        if position is not None and "image_size" in vision and "patch_size" in vision:
            grid = (vision["image_size"] // vision["patch_size"]) ** 2
            if position.shape[0] not in (grid, grid + 1):
                problems.append(
                    f"image_size {vision['image_size']} gives {grid} patches, the position embedding has "
                    f"{position.shape[0]} rows"
                )
    if layers and "num_hidden_layers" in vision and vision["num_hidden_layers"] != max(layers) + 1:
        problems.append(f"{vision['num_hidden_layers']} vision layers in the tower config, {max(layers) + 1} stored")
    if problems:
        raise ValueError(
            "The vision tower config does not match the checkpoint's vision weights: "
            + "; ".join(problems)
            + ". Pass --vision-tower with the folder or repo of the tower this checkpoint was trained with."
        )
    embed = tensors.get("model.language_model.embed_tokens.weight")
    expected = [original_config.get("vocab_size"), original_config.get("hidden_size")]
    if embed is not None and None not in expected and embed.shape != expected:
        raise ValueError(
            f"The language model weights do not match config.json: embed_tokens is {embed.shape}, config.json says "
            f"vocab_size x hidden_size = {expected}. Check --language-model."
        )
    optional = {"audio tower", "audio projector"} if not is_audio_visual(original_config) else set()
    if original_config.get("tie_word_embeddings", False):
        optional.add("lm head")
    missing = [
        what
        for what, prefix in COMPONENT_PREFIXES.items()
        if what not in optional and not any(name.startswith(prefix) for name in tensors)
    ]
    if missing:
        raise ValueError(f"The source has no {', '.join(missing)} weights: the checkpoint is incomplete.")


def _torch_dtype_name(original_config: dict, tensors: list[SourceTensor]) -> str:
    names = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}
    dtype = original_config.get("torch_dtype") or original_config.get("dtype")
    if dtype in names.values():
        return dtype
    counts: dict[str, int] = {}
    for tensor in tensors:
        counts[tensor.dtype] = counts.get(tensor.dtype, 0) + tensor.nbytes
    return names.get(max(counts, key=counts.get), "float32")


def _language_model_source(original_config: dict, preset: dict | None) -> str:
    name = original_config.get("_name_or_path") or ""
    if name and (Path(name).expanduser().is_dir() or looks_like_repo_id(name)):
        return name
    if preset is not None:
        return preset["language_model"]
    raise ValueError(
        f"This Base checkpoint does not say which language model it extends (config.json _name_or_path = {name!r}); "
        "pass --language-model with its folder or Hub repo id."
    )


@dataclass
class ConversionPlan:
    """What a conversion writes: the folder's metadata and the output shards (each a list of source byte ranges)."""

    metadata: FolderMetadata
    shards: list[Shard]
    num_tensors: int
    total_bytes: int


def plan_conversion(
    source: str | os.PathLike,
    output_dir: Path,
    *,
    preset: str | None = None,
    vision_tower: str | os.PathLike | None = None,
    language_model: str | os.PathLike | None = None,
    source_revision: str | None = None,
    max_shard_size: str | int | None = None,
    repo_id: str | None = None,
    token=None,
) -> ConversionPlan:
    """Resolve the sources of `source` (downloading what a Hub repo must provide), rename every tensor through
    `original_layout`, check names and shapes against the configs, and plan the shards of `output_dir`."""
    folder, source_repo = _resolve_folder(source, "checkpoint", source_revision, token)
    if output_dir.resolve() == folder.resolve() or folder.resolve() in output_dir.resolve().parents:
        raise ValueError(f"The output folder {output_dir} must not be the source folder or inside it.")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"Not a VideoLLaMA2 checkpoint: {folder} has no config.json.")
    original_config = json.loads((folder / "config.json").read_text())
    if original_config.get("model_type") == "videollama2":
        raise ValueError(
            f"{source} is already in the transformers layout (a converted checkpoint): load it directly with "
            "from_pretrained or `videollama2-hf ask --model`; there is nothing to convert."
        )
    family = language_model_type(original_config)
    audio_visual = is_audio_visual(original_config)
    kind = _checkpoint_kind(folder)
    if "generation" not in backbone_defaults(family):
        raise ValueError(
            f"No generation defaults are known for a {family} language model; this converter handles the "
            "released VideoLLaMA2 families (mistral, mixtral, qwen2)."
        )
    chosen = get_preset(preset) if preset else detect_preset(source_repo or str(source), original_config, kind)
    if chosen is not None:
        if chosen["backbone"] != family:
            raise ValueError(
                f"Preset {chosen['name']} is for a {chosen['backbone']} checkpoint, but config.json describes a "
                f"{family} one; pick another preset (--list-presets) or leave --preset out."
            )
        if chosen["kind"] != kind or chosen["projector_type"] != original_config.get("mm_projector_type"):
            logger.warning("Preset %s describes a %s checkpoint; this source looks different.", chosen["name"], kind)
        logger.info("Preset: %s", chosen["name"])
    else:
        logger.info("No preset matches %s; chat template and generation defaults of the %s family.", source, family)
    defaults = backbone_defaults(family)
    tower = resolve_vision_tower(original_config, folder, vision_tower, token=token)
    vision_config, image_processor = tower["config"], tower["image_processor"]
    # A local path recorded at training names a released tower by its folder name: the model card gives the Hub id.
    tower_id = tower["id"] if vision_tower is not None else (known_vision_tower(tower["id"]) or tower)["id"]

    unknown: list = []
    language_model_name = None
    if kind == "chat":
        # An audio-visual release's loader fills the vision tower from the tower's own repo, not from the trainer's
        # copy in the shards: so does the conversion.
        rename = _rename_audio_visual if audio_visual else convert_original_key
        checkpoint_files = _weight_files(folder, "the checkpoint")
        groups = [source_tensors(path, rename, unknown) for path in checkpoint_files]
        if audio_visual:
            _check_shared_table_copies(checkpoint_files)
            tower_folder, _ = _resolve_folder(tower["id"], "vision", None, token)
            groups += [
                source_tensors(path, _rename_tower, unknown)
                for path in _weight_files(tower_folder, "the vision tower")
            ]
        tokenizer_dir = folder
    else:
        language_model_name = str(language_model or _language_model_source(original_config, chosen))
        lm_folder, _ = _resolve_folder(language_model_name, "language-model", None, token)
        groups = [
            source_tensors(path, _rename_language_model, unknown)
            for path in _weight_files(lm_folder, "the language model")
        ]
        tower_folder, _ = _resolve_folder(tower["id"], "vision", None, token)
        groups += [
            source_tensors(path, _rename_tower, unknown) for path in _weight_files(tower_folder, "the vision tower")
        ]
        groups.append(source_tensors(folder / _PROJECTOR_FILE, _rename_projector, unknown))
        has_tokenizer = any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer.model"))
        tokenizer_dir = folder if has_tokenizer else lm_folder
    _raise_unknown(unknown)
    tensors: dict[str, SourceTensor] = {}
    for tensor in (tensor for group in groups for tensor in group):
        if tensor.name in tensors:
            other = tensors[tensor.name]
            raise ValueError(
                f"Two source tensors become {tensor.name}: {other.source_key} ({other.path.name}) and "
                f"{tensor.source_key} ({tensor.path.name}). The source mixes two checkpoints."
            )
        tensors[tensor.name] = tensor
    _check_shapes(tensors, vision_config, original_config)
    shapes = {tensor.source_key: tensor.shape for tensor in tensors.values()}
    shards = plan_shards(groups, parse_size(max_shard_size))
    total_bytes = sum(shard.nbytes for shard in shards)

    metadata = FolderMetadata(
        source=str(source),
        source_repo=source_repo,
        kind=kind,
        original_config=original_config,
        vision_config=vision_config,
        image_processor=image_processor,
        vision_tower_id=tower_id,
        generation=defaults.get("generation"),
        preset_name=chosen["name"] if chosen else None,
        tokenizer_dir=tokenizer_dir,
        language_model=language_model_name,
        dtype=_torch_dtype_name(original_config, list(tensors.values())),
        num_tensors=len(tensors),
        total_bytes=total_bytes,
        num_shards=len(shards),
        output_name=output_dir.name,
        vision_tower_source=str(vision_tower) if vision_tower is not None else None,
        repo_id=repo_id,
        audio_config=audio_encoder_config(shapes) if audio_visual else None,
    )
    return ConversionPlan(metadata, shards, len(tensors), total_bytes)
