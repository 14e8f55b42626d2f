# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Convert a released DAMO-NLP-SG VideoLLaMA2 checkpoint into a self-contained transformers-5 folder.

The conversion finds its sources (local folders or Hub repos), plans the output shards from their safetensors headers
(`safetensors_copy`), writes the metadata (config, generation defaults, processor, tokenizer, chat template, remote
code, model card) on a worker thread while the kernel copies the weights, optionally verifies the result, then moves
the folder into place and pushes it to the Hub. What a release is (tensor names, config, presets, towers, processor
settings) comes from `original_layout`.

Without `--verify`, a conversion imports neither torch nor torchvision (transformers only, for the tokenizer and the
generation config); torch is imported for `.bin` sources and for `--verify`.

Entry points: `convert_videollama2_checkpoint(...)` (library) and `videollama2-hf convert ...` (`cli.py`).
"""

import json
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .converted_folder import FolderMetadata, check_destination, publish, write_metadata
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
    load_torch_file,
    parse_size,
    plan_shards,
    read_safetensors_header,
    source_tensors,
    torch_dtypes,
    write_index,
    write_shards,
)


# A child of transformers' library logger (its verbosity and handler apply) without importing transformers, which
# the weight copy does not need (0.9 s and +50 MB RSS here).
logger = logging.getLogger(f"transformers.{__name__}")


# ---------------------------------------------------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------------------
# Renaming each kind of source
# ---------------------------------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------------------------------
# Consistency checks on tensor shapes (from the headers, no tensor library)
# ---------------------------------------------------------------------------------------------------------------------
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


@contextmanager
def _progress(total: int, description: str, enabled: bool = True):
    """Yield a callable advancing a byte counter: a tqdm bar on a terminal, a log line every 10% otherwise (so that a
    conversion writing to a log file shows it is alive)."""
    if not enabled:
        yield lambda count: None
        return
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        with tqdm(total=total, unit="B", unit_scale=True, desc=description) as bar:
            yield bar.update
        return
    done, next_report, began = 0, 0.1, time.perf_counter()

    def advance(count: int) -> None:
        nonlocal done, next_report
        done += count
        while total and done / total >= next_report - 1e-9:
            elapsed = time.perf_counter() - began
            logger.info(
                "%s: %3.0f%% (%.2f of %.2f GB, %.1f s)",
                description,
                100 * next_report,
                done / 1e9,
                total / 1e9,
                elapsed,
            )
            next_report += 0.1

    yield advance


def _torch_dtype_name(original_config: dict, tensors: list[SourceTensor]) -> str:
    names = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}
    dtype = original_config.get("torch_dtype") or original_config.get("dtype")
    if dtype in names.values():
        return dtype
    counts: dict[str, int] = {}
    for tensor in tensors:
        counts[tensor.dtype] = counts.get(tensor.dtype, 0) + tensor.nbytes
    return names.get(max(counts, key=counts.get), "float32")


# ---------------------------------------------------------------------------------------------------------------------
# --verify
# ---------------------------------------------------------------------------------------------------------------------
def verify_conversion(folder: Path, shards: list[Shard]) -> dict:
    """Reload `folder` with `from_pretrained` (in the saved dtype), compare every tensor with its source bit for bit
    (source files read one at a time) and run one forward pass on a tiny image prompt."""
    import torch
    from transformers.core_model_loading import revert_weight_conversion

    from .modeling_videollama2 import VideoLlama2ForConditionalGeneration

    dtypes = {tensor.dtype for shard in shards for tensor in shard.tensors}
    by_name = {name: dtype for dtype, name in torch_dtypes().items()}
    load_dtype = by_name[dtypes.pop()] if len(dtypes) == 1 else torch.float32  # mixed: exact upcast
    model, info = VideoLlama2ForConditionalGeneration.from_pretrained(
        folder, dtype=load_dtype, output_loading_info=True
    )
    state = revert_weight_conversion(model, model.state_dict())  # back to the on-disk (HF) names
    by_source: dict[Path, list[SourceTensor]] = {}
    for shard in shards:
        for tensor in shard.tensors:
            by_source.setdefault(tensor.path, []).append(tensor)
    missing, mismatched, max_diff, compared = [], [], 0.0, 0
    for path, tensors in by_source.items():
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(path, framework="pt") as handle:
                source = {tensor.source_key: handle.get_tensor(tensor.source_key) for tensor in tensors}
        else:
            source = load_torch_file(path)
        for tensor in tensors:
            loaded = state.pop(tensor.name, None)
            if loaded is None:
                missing.append(tensor.name)
                continue
            expected = source[tensor.source_key].to(load_dtype)
            compared += 1
            if loaded.shape != expected.shape or not torch.equal(loaded, expected):
                mismatched.append(tensor.name)
                if loaded.shape == expected.shape:
                    max_diff = max(max_diff, (loaded.double() - expected.double()).abs().max().item())
                else:
                    max_diff = math.inf
        del source
    config = model.config
    size = config.vision_config.image_size
    input_ids = torch.tensor([[1, 2, 3] + [config.image_token_id] * config.get_num_visual_tokens() + [4, 5]])
    pixel_values = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    forward_dtype = str(model.dtype).removeprefix("torch.")
    with torch.inference_mode():
        try:
            logits = model(input_ids=input_ids, pixel_values=pixel_values.to(model.dtype), logits_to_keep=1).logits
        except NotImplementedError as error:  # e.g. CPU AvgPool3d (stp_connector) has no bfloat16 kernel
            model.float()  # the bit-level comparison is done; upcasting is exact
            forward_dtype = f"float32 ({forward_dtype} failed: {str(error)[:120]})"
            logits = model(input_ids=input_ids, pixel_values=pixel_values, logits_to_keep=1).logits
    report = {
        "tensors_compared": compared,
        "max_abs_diff": max_diff,
        "mismatched": mismatched,
        "missing_keys": sorted(set(missing) | set(info["missing_keys"])),
        "unexpected_keys": sorted(set(state) | set(info["unexpected_keys"])),
        "dtype": str(load_dtype).removeprefix("torch."),
        "forward_dtype": forward_dtype,
        "forward_logits_shape": list(logits.shape),
        "forward_finite": bool(torch.isfinite(logits).all()),
    }
    report["ok"] = not (mismatched or report["missing_keys"] or report["unexpected_keys"]) and report["forward_finite"]
    del model, state
    return report


# ---------------------------------------------------------------------------------------------------------------------
# --push-to-hub
# ---------------------------------------------------------------------------------------------------------------------
def push_folder_to_hub(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    token=None,
) -> str:
    """Create `repo_id` (if needed) and upload `folder` to it; returns the repo URL. The token comes from the usual
    huggingface_hub sources (`HF_TOKEN`, `hf auth login`) unless given.

    Upload method: huggingface_hub >= 2 has no `upload_large_folder`; its `upload_folder` is itself streamed,
    resumable (re-running skips committed files and deduplicated chunks) and splits very large folders into several
    commits, and it takes `commit_message` and `revision`, so it is used. With an older huggingface_hub that still
    has `upload_large_folder` (resumable, but without a commit message), that is used unless a commit message is
    given, in which case `upload_folder` is used so the message is honoured.
    """
    import huggingface_hub

    api = huggingface_hub.HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
    upload_large_folder = getattr(api, "upload_large_folder", None)
    if upload_large_folder is not None and commit_message is None:
        upload_large_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model", revision=revision)
    else:
        api.upload_folder(
            repo_id=repo_id,
            folder_path=str(folder),
            repo_type="model",
            revision=revision,
            commit_message=commit_message or f"Add {Path(folder).name}, converted with videollama2-hf",
        )
    return str(url)


# ---------------------------------------------------------------------------------------------------------------------
# The conversion
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class ConversionResult:
    output_dir: Path
    kind: str
    preset: str | None
    num_tensors: int
    total_bytes: int
    shards: list[str]
    token_ids: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)
    verification: dict | None = None
    repo_url: str | None = None


class _Worker(threading.Thread):
    """Runs the metadata step beside the weight copy (the copy runs in the kernel and releases the GIL)."""

    def __init__(self, target):
        super().__init__(name="videollama2-convert-metadata", daemon=True)
        self.target, self.result, self.error = target, None, None
        self.cancelled = threading.Event()

    def run(self):
        try:
            self.result = self.target(self.check_cancelled)
        except BaseException as error:  # re-raised in the main thread
            self.error = error

    def check_cancelled(self):
        if self.cancelled.is_set():
            raise InterruptedError("conversion cancelled")

    def check_failed(self):
        """For the main thread: stop copying as soon as the metadata step failed."""
        if self.error is not None:
            raise self.error


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


def convert_videollama2_checkpoint(
    source: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    preset: str | None = None,
    vision_tower: str | os.PathLike | None = None,
    language_model: str | os.PathLike | None = None,
    overwrite: bool = False,
    verify: bool = False,
    push_to_hub: str | None = None,
    private: bool | None = None,
    revision: str | None = None,
    commit_message: str | None = None,
    source_revision: str | None = None,
    max_shard_size: str | int | None = None,
    token=None,
    progress: bool = True,
) -> ConversionResult:
    """Convert a released VideoLLaMA2 checkpoint (Hub repo id or local folder, original layout) into a
    self-contained transformers-5 folder at `output_dir`, optionally verify it and push it to the Hub.

    Chat checkpoints hold every weight; the vision tower's config and image-processor settings come from the preset
    (or `vision_tower`). Base checkpoints hold only `mm_projector.bin`: the vision tower weights come from the tower
    repo (`mm_vision_tower` or `vision_tower`), the language model from `_name_or_path` (or `language_model`).
    Tensors are renamed through `original_layout.ORIGINAL_TO_HF_KEY_PATTERNS` and copied byte for byte, one output
    shard per source file (or re-sharded to `max_shard_size`). The result is written to a temporary folder beside
    `output_dir` and renamed into place only when everything (and `verify`) succeeded.
    """
    timings, start = {}, time.perf_counter()
    output_dir = Path(output_dir).expanduser().absolute()
    check_destination(output_dir, overwrite)

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
    timings["plan"] = time.perf_counter() - start

    meta = FolderMetadata(
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
        repo_id=push_to_hub,
        audio_config=audio_encoder_config(shapes) if audio_visual else None,
    )
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".partial", dir=output_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the published folder gets the usual permissions
    worker = None
    try:
        if any(tensor.offset is None for tensor in tensors.values()):
            import torch  # noqa: F401  (imported here, not concurrently by two threads)

        def metadata(should_stop):
            began = time.perf_counter()
            result = write_metadata(meta, tmp, should_stop)
            timings["metadata"] = time.perf_counter() - began
            return result

        worker = _Worker(metadata)
        worker.start()
        began = time.perf_counter()
        with _progress(total_bytes, "Converting weights", enabled=progress) as advance:
            write_shards(shards, tmp, advance, worker.check_failed)
        write_index(shards, tmp)
        timings["weights"] = time.perf_counter() - began
        worker.join()
        worker.check_failed()
        verification = None
        if verify:
            began = time.perf_counter()
            verification = verify_conversion(tmp, shards)
            timings["verify"] = time.perf_counter() - began
            logger.info("Verification: %s", json.dumps(verification))
            if not verification["ok"]:
                raise ValueError(
                    "Verification failed: "
                    + json.dumps({key: value for key, value in verification.items() if value}, default=str)[:2000]
                )
        publish(tmp, output_dir, overwrite)
    except BaseException:
        try:
            if worker is not None and worker.is_alive():
                worker.cancelled.set()
                worker.join()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    result = ConversionResult(
        output_dir=output_dir,
        kind=kind,
        preset=meta.preset_name,
        num_tensors=len(tensors),
        total_bytes=total_bytes,
        shards=[shard.filename for shard in shards],
        token_ids=worker.result,
        timings=timings,
        verification=verification,
    )
    logger.info(
        "Wrote %s: %d tensors, %.2f GB in %d shard(s)", output_dir, len(tensors), total_bytes / 1e9, len(shards)
    )
    if push_to_hub:
        began = time.perf_counter()
        result.repo_url = push_folder_to_hub(
            output_dir, push_to_hub, private=private, revision=revision, commit_message=commit_message, token=token
        )
        timings["push"] = time.perf_counter() - began
    timings["total"] = time.perf_counter() - start
    return result
