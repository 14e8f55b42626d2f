# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Turn a released DAMO-NLP-SG VideoLLaMA2 checkpoint (original layout) into a transformers-5 repository.

This module is the single source of truth for the original -> HF key names and config fields. It imports
neither torch nor transformers at module level, so that copying weights stays cheap: renaming a safetensors
tensor is a header rewrite, and the tensor bytes are copied by the kernel. torch / transformers are imported
only where they are needed (`.bin` sources, config / processor / tokenizer files, `--verify`).

Entry points: `convert_videollama2_checkpoint(...)` (library) and `videollama2-hf convert ...` (CLI, `cli.py`).
"""

import errno
import json
import logging
import math
import os
import re
import shutil
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


# Original key -> HF key. The first pattern that matches wins; the patterns are disjoint and anchored, so
# applying them one after the other (as transformers' load-time renaming does) gives the same result.
ORIGINAL_TO_HF_KEY_PATTERNS: list[tuple[str, str]] = [
    (r"^model\.vision_tower\.vision_tower\.vision_model\.", "model.vision_tower."),
    # readout MLP of STC/STP (`readout.0`, `readout.2`) and the whole `mlp2x_gelu` projector (`0`, `2`)
    *[
        (rf"^model\.mm_projector\.(?:readout\.)?{2 * i}\.", f"model.multi_modal_projector.readout.linear_{i + 1}.")
        for i in range(4)
    ],
    (r"^model\.mm_projector\.(weight|bias)$", r"model.multi_modal_projector.readout.linear_1.\1"),  # `linear`
    (r"^model\.mm_projector\.(s[12]\.b\d+\.(?:conv[123]|downsample))\.bn\.", r"model.multi_modal_projector.\1.norm."),
    (r"^model\.mm_projector\.sampler\.0\.", "model.multi_modal_projector.sampler."),
    (r"^model\.mm_projector\.(s[12]\.b\d+\.)", r"model.multi_modal_projector.\1"),
    (r"^model\.(embed_tokens|layers|norm)\.", r"model.language_model.\1."),
    (r"^lm_head\.weight$", "lm_head.weight"),
]
_COMPILED_PATTERNS = [(re.compile(pattern), replacement) for pattern, replacement in ORIGINAL_TO_HF_KEY_PATTERNS]


def convert_original_key(key: str) -> str:
    """HF name of an original checkpoint tensor; unknown names raise, so nothing is silently dropped."""
    for pattern, replacement in _COMPILED_PATTERNS:
        if pattern.search(key):
            return pattern.sub(replacement, key)
    raise KeyError(
        f"Unknown tensor {key!r} in the source checkpoint: it is not part of a VideoLLaMA2 vision/language model "
        "(audio-visual checkpoints are not supported)."
    )


# Original config.json fields that describe the multimodal parts or training, not the language model.
_MULTIMODAL_CONFIG_KEYS = {
    "mm_vision_tower",
    "mm_vision_select_layer",
    "mm_vision_select_feature",
    "mm_projector_type",
    "mm_hidden_size",
    "mm_projector_lr",
    "mm_use_im_start_end",
    "mm_use_im_patch_token",
    "use_mm_proj",
    "tune_mm_mlp_adapter",
    "freeze_mm_mlp_adapter",
    "image_aspect_ratio",
    "num_frames",
    "extra_image_grid",
    "tokenizer_model_max_length",
    "tokenizer_padding_side",
    "architectures",
    "_name_or_path",
    "torch_dtype",
    "dtype",
    "transformers_version",
    "model_type",
}
_LANGUAGE_MODEL_TYPES = {"mistral", "mixtral", "qwen2", "llama"}
_DEFAULT_NUM_FRAMES = 8  # the original's NUM_FRAMES, used when config.json has no `num_frames`


def language_model_type(original_config: dict) -> str:
    """`videollama2_mistral` -> `mistral`; older configs say `mistral`/`qwen2` but carry `mm_*` fields."""
    model_type = original_config.get("model_type", "")
    family = model_type.removeprefix("videollama2_") if model_type != "videollama2" else "mistral"
    if family not in _LANGUAGE_MODEL_TYPES or "mm_vision_tower" not in original_config:
        raise ValueError(
            f"Not a VideoLLaMA2 checkpoint: config.json has model_type {model_type!r}"
            + ("" if "mm_vision_tower" in original_config else " and no `mm_vision_tower`")
            + f". Expected one of videollama2_{{{', '.join(sorted(_LANGUAGE_MODEL_TYPES))}}}."
        )
    return family


def convert_config(original_config: dict, vision_tower_config: dict, image_token_id: int, video_token_id: int) -> dict:
    """Kwargs for `VideoLlama2Config` from an original config.json and the tower repo's config.json.

    `vision_tower_config` may be a full CLIPConfig/SiglipConfig dict (its `vision_config` is used) or a vision config.
    """
    family = language_model_type(original_config)
    text_config = {k: v for k, v in original_config.items() if k not in _MULTIMODAL_CONFIG_KEYS}
    text_config["model_type"] = family
    vision_config = dict(vision_tower_config.get("vision_config", vision_tower_config))
    vision_config.pop("transformers_version", None)
    tower_type = vision_config.get("model_type") or vision_tower_config.get("model_type", "") + "_vision_model"
    vision_config["model_type"] = tower_type
    select_feature = original_config.get("mm_vision_select_feature", "patch")
    has_cls = tower_type == "clip_vision_model"
    return {
        "text_config": text_config,
        "vision_config": vision_config,
        "projector_type": original_config.get("mm_projector_type", "linear"),
        "num_frames": original_config.get("num_frames") or _DEFAULT_NUM_FRAMES,
        "vision_feature_layer": original_config.get("mm_vision_select_layer", -2),
        "vision_feature_select_strategy": "default" if has_cls and select_feature == "patch" else "full",
        "image_token_id": image_token_id,
        "video_token_id": video_token_id,
        "tie_word_embeddings": original_config.get("tie_word_embeddings", False),
    }


# ---------------------------------------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------------------------------------
# Not `transformers.utils.logging`: importing it imports the `transformers` package (measured on the 2-core dev box:
# 0.9 s and +50 MB RSS, against ~0 for the stdlib), which the weight-copy path must not pay. A stdlib logger named
# under `transformers.` is a child of transformers' library root logger, so as soon as transformers is loaded its
# handler and verbosity (`transformers.logging.set_verbosity_*`, `TRANSFORMERS_VERBOSITY`) apply to these messages.
logger = logging.getLogger("transformers.videollama2_hf.convert")


# ---------------------------------------------------------------------------------------------------------------------
# Presets: one JSON file per released checkpoint, packaged as `videollama2_hf/presets/*.json`
# ---------------------------------------------------------------------------------------------------------------------
PRESETS_DIR = Path(__file__).resolve().parent / "presets"


def list_presets() -> dict[str, dict]:
    """All presets by name (`VideoLLaMA2-7B`, ...), read from the package's `presets/` folder."""
    presets = {}
    for path in sorted(PRESETS_DIR.glob("*.json")):
        preset = json.loads(path.read_text())
        presets[preset["name"]] = preset
    if not presets:
        raise FileNotFoundError(f"No presets found in {PRESETS_DIR}; the package was installed without its data.")
    return presets


def get_preset(name: str) -> dict:
    """The preset called `name` (case-insensitive)."""
    presets = list_presets()
    by_lower = {key.lower(): value for key, value in presets.items()}
    if name.lower() not in by_lower:
        raise ValueError(f"Unknown preset {name!r}. Available presets: {', '.join(presets)} (see --list-presets).")
    return by_lower[name.lower()]


def format_presets() -> str:
    """A table of the presets, for `--list-presets`."""
    rows = [("name", "kind", "backbone", "frames", "projector", "vision tower", "source")]
    for preset in list_presets().values():
        rows.append(
            (
                preset["name"],
                preset["kind"],
                preset["backbone"],
                str(preset["num_frames"]),
                preset["projector_type"],
                preset["vision_tower"]["id"],
                preset["source"],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def _preset_signature(preset: dict) -> tuple:
    return (
        preset["backbone"],
        preset["kind"],
        preset["num_frames"],
        preset["projector_type"],
        preset["vision_tower"]["id"],
    )


def detect_preset(source: str, original_config: dict, kind: str) -> dict | None:
    """The preset of a source: by repo id / folder name first, then by what config.json describes. None if no
    released checkpoint looks like it (e.g. a fine-tuned model with another connector)."""
    presets = list_presets()
    name = str(source).rstrip("/\\").replace("\\", "/").split("/")[-1].lower()
    for preset in presets.values():
        if str(source).lower() == preset["source"].lower() or name == preset["name"].lower():
            return preset
    signature = (
        language_model_type(original_config),
        kind,
        original_config.get("num_frames") or _DEFAULT_NUM_FRAMES,
        original_config.get("mm_projector_type", "linear"),
        (known_vision_tower(original_config.get("mm_vision_tower", "")) or {}).get("id"),
    )
    matches = [preset for preset in presets.values() if _preset_signature(preset) == signature]
    return matches[0] if len(matches) == 1 else None


def _family_defaults(family: str) -> dict:
    """Chat template family and generation defaults shared by every released checkpoint of a backbone family."""
    for preset in list_presets().values():
        if preset["backbone"] == family:
            return preset
    raise ValueError(
        f"No preset describes a {family!r} language model, so its chat template and generation defaults are "
        "unknown. Pass --preset with the closest released checkpoint."
    )


def known_vision_tower(tower_id: str) -> dict | None:
    """A released tower by Hub id, or by folder name when a training run recorded a local copy's path."""
    name = str(tower_id).rstrip("/").split("/")[-1]
    for preset in list_presets().values():
        if preset["vision_tower"]["id"] in (tower_id, f"{preset['vision_tower']['id'].split('/')[0]}/{name}"):
            return preset["vision_tower"]
    return None


# ---------------------------------------------------------------------------------------------------------------------
# safetensors without a tensor library: 8-byte little-endian header length, JSON header, raw bytes
# ---------------------------------------------------------------------------------------------------------------------
DTYPE_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "F8_E8M0": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
    "C64": 8,
}
_MAX_HEADER_SIZE = 100_000_000  # the limit the safetensors library enforces


@dataclass
class SafetensorsHeader:
    """Parsed header of a safetensors file; offsets in `tensors` are absolute file offsets."""

    path: Path
    tensors: dict[str, tuple[str, list[int], int, int]]  # name -> (dtype, shape, start, end)
    metadata: dict
    data_start: int


def read_safetensors_header(path: str | os.PathLike) -> SafetensorsHeader:
    """Read and validate a safetensors header; a short, truncated or corrupt file raises a ValueError."""
    path = Path(path)
    size = path.stat().st_size
    fix = "the file is damaged or was not fully downloaded: delete it and download it again"
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise ValueError(
                f"Truncated safetensors file {path}: {size} bytes, shorter than its 8-byte prefix; {fix}."
            )
        (header_size,) = struct.unpack("<Q", prefix)
        if header_size > _MAX_HEADER_SIZE or 8 + header_size > size:
            raise ValueError(
                f"Truncated or invalid safetensors file {path}: the header claims {header_size} bytes but the file "
                f"has {size}; {fix}."
            )
        try:
            header = json.loads(handle.read(header_size))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"Corrupt safetensors header in {path} ({error}); {fix}.") from None
    data_start = 8 + header_size
    metadata = header.pop("__metadata__", None) or {}
    tensors = {}
    data_end = 0
    for name, info in header.items():
        dtype, shape, (start, end) = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPE_SIZES:
            raise ValueError(f"Tensor {name!r} in {path} has dtype {dtype}, which this converter cannot copy.")
        if end - start != math.prod(shape) * DTYPE_SIZES[dtype] or start < 0:
            raise ValueError(f"Corrupt safetensors header in {path}: offsets of {name!r} do not match its shape.")
        tensors[name] = (dtype, list(shape), data_start + start, data_start + end)
        data_end = max(data_end, end)
    if data_start + data_end > size:
        raise ValueError(
            f"Truncated safetensors file {path}: its tensors need {data_start + data_end} bytes but the file has "
            f"{size}; {fix}."
        )
    return SafetensorsHeader(path, tensors, metadata, data_start)


@dataclass
class _Tensor:
    """One tensor of the output: its HF name and where its bytes come from."""

    name: str
    source_key: str
    dtype: str
    shape: list[int]
    path: Path
    offset: int | None  # absolute offset in a safetensors source; None for a torch pickle (`.bin`)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPE_SIZES[self.dtype]


def _encode_header(tensors: list["_Tensor"], page_offset: int = 0) -> bytes:
    """8-byte length + JSON header of a shard whose data holds `tensors` in that order. Keys are written sorted by
    name (deterministic); offsets are relative to the data start. The JSON is padded with spaces (as the format
    allows) to a multiple of 8 bytes and, when `page_offset` is a multiple of 8, further so that the data starts at
    that offset within a 4 KiB page: the kernel copies twice as fast when source and destination bytes sit at the
    same place in their pages (measured here: 0.36-0.57 s against 0.78-0.95 s for 1.5 GB)."""
    entries, offset = {}, 0
    for tensor in tensors:
        entries[tensor.name] = {
            "dtype": tensor.dtype,
            "shape": tensor.shape,
            "data_offsets": [offset, offset + tensor.nbytes],
        }
        offset += tensor.nbytes
    header = {"__metadata__": {"format": "pt"}, **{name: entries[name] for name in sorted(entries)}}
    encoded = json.dumps(header, separators=(",", ":")).encode()
    data_start = 8 + len(encoded) + (-len(encoded) % 8)
    if page_offset % 8 == 0:
        data_start += (page_offset - data_start) % _PAGE
    encoded += b" " * (data_start - 8 - len(encoded))
    return struct.pack("<Q", len(encoded)) + encoded


_PAGE = 4096


def _page_offset(tensors: list["_Tensor"]) -> int:
    """Where in a page the data of a shard should start so that most of its bytes keep their in-page position."""
    weights: dict[int, int] = {}
    position = 0
    for tensor in tensors:
        if tensor.offset is not None:
            delta = (tensor.offset - position) % _PAGE
            weights[delta] = weights.get(delta, 0) + tensor.nbytes
        position += tensor.nbytes
    return max(weights, key=weights.get) if weights else 0


# ---------------------------------------------------------------------------------------------------------------------
# Kernel-side byte copy
# ---------------------------------------------------------------------------------------------------------------------
_COPY_CHUNK = 64 << 20  # bytes per copy_file_range / sendfile call (no user-space buffer)
_BUFFER_CHUNK = 16 << 20  # user-space buffer of the last-resort pread/write fallback
_FALLBACK_ERRNOS = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM, errno.ENOTSUP, errno.EBADF}


def _write_all(fd: int, data) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _copy_file_range(src: int, dst: int, offset: int, count: int) -> int:
    return os.copy_file_range(src, dst, count, offset)  # dst offset: its file position, advanced by the kernel


def _sendfile(src: int, dst: int, offset: int, count: int) -> int:
    return os.sendfile(dst, src, offset, count)


def _pread_write(src: int, dst: int, offset: int, count: int) -> int:
    data = os.pread(src, min(count, _BUFFER_CHUNK), offset)
    _write_all(dst, data)
    return len(data)


_COPY_METHODS = [method for method in (_copy_file_range, _sendfile) if hasattr(os, method.__name__[1:])]
_COPY_METHODS.append(_pread_write)


def _copy_bytes(src: int, dst: int, offset: int, length: int, on_progress, source: Path) -> None:
    """Append `length` bytes of `src` from `offset` to `dst`: copy_file_range, else sendfile, else pread/write.
    A method the kernel or filesystem refuses is dropped for the rest of the process."""
    end = offset + length
    while offset < end:
        count = min(_COPY_CHUNK, end - offset)
        try:
            copied = _COPY_METHODS[0](src, dst, offset, count)
        except OSError as error:
            if error.errno not in _FALLBACK_ERRNOS or len(_COPY_METHODS) == 1:
                raise
            logger.debug("%s failed (%s); falling back to %s", _COPY_METHODS[0].__name__, error, _COPY_METHODS[1])
            del _COPY_METHODS[0]
            continue
        if copied == 0:
            raise ValueError(f"Truncated source file {source}: it ended at byte {offset}, expected {end} bytes.")
        offset += copied
        on_progress(copied)


# ---------------------------------------------------------------------------------------------------------------------
# Reading sources
# ---------------------------------------------------------------------------------------------------------------------
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
)
_PROJECTOR_FILE = "mm_projector.bin"


def _torch_dtypes() -> dict:
    import torch

    return {
        torch.float64: "F64",
        torch.float32: "F32",
        torch.float16: "F16",
        torch.bfloat16: "BF16",
        torch.int64: "I64",
        torch.int32: "I32",
        torch.int16: "I16",
        torch.int8: "I8",
        torch.uint8: "U8",
        torch.bool: "BOOL",
        torch.float8_e4m3fn: "F8_E4M3",
        torch.float8_e5m2: "F8_E5M2",
    }


def _load_torch_file(path: Path) -> dict:
    """A torch.save'd state dict, memory-mapped when the file allows it (zip format)."""
    import torch

    try:
        state_dict = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except RuntimeError as error:
        if "mmap" not in str(error):
            raise ValueError(f"Cannot read {path} as a torch state dict ({error}); it may be truncated.") from None
        state_dict = torch.load(path, map_location="cpu", weights_only=True)  # legacy (non-zip) pickle
    except Exception as error:  # pickle / zip errors of a damaged file
        raise ValueError(
            f"Cannot read {path} as a torch state dict ({type(error).__name__}: {error}); the file is damaged or "
            "was not fully downloaded: delete it and download it again."
        ) from None
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise ValueError(f"{path} is not a flat state dict of tensors.")
    return state_dict


def _source_tensors(path: Path, rename, unknown: list) -> list[_Tensor]:
    """Tensors of one source file in data order, renamed by `rename(key) -> name | None` (None drops the tensor).
    Names `rename` does not know (KeyError) are collected in `unknown`."""
    tensors = []
    if path.suffix == ".safetensors":
        header = read_safetensors_header(path)
        items = sorted(header.tensors.items(), key=lambda item: item[1][2])
        source = [(key, dtype, shape, start) for key, (dtype, shape, start, _) in items]
    else:
        dtypes = _torch_dtypes()
        state_dict = _load_torch_file(path)
        source = []
        for key, tensor in state_dict.items():
            if tensor.dtype not in dtypes:
                raise ValueError(
                    f"Tensor {key!r} in {path} has dtype {tensor.dtype}, which this converter cannot copy."
                )
            source.append((key, dtypes[tensor.dtype], list(tensor.shape), None))
        del state_dict
    for key, dtype, shape, offset in source:
        try:
            name = rename(key)
        except KeyError:
            unknown.append((path, key))
            continue
        if name is not None:
            tensors.append(_Tensor(name, key, dtype, shape, path, offset))
    return tensors


def _weight_files(directory: Path, what: str) -> list[Path]:
    """The weight files of a folder in the transformers layout (safetensors preferred over torch pickles)."""
    for index_name, single in (
        ("model.safetensors.index.json", "model.safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
    ):
        index = directory / index_name
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            files = sorted(set(weight_map.values()))
            missing = [name for name in files if not (directory / name).is_file()]
            if missing:
                raise FileNotFoundError(
                    f"Missing shard(s) of {what} in {directory}: {', '.join(missing)} (listed in {index_name}). "
                    "The download is incomplete: download the missing files again (Hub downloads resume)."
                )
            return [directory / name for name in files]
        if (directory / single).is_file():
            return [directory / single]
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


def _looks_like_repo_id(source: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", source) is not None and ".." not in source


def _hub_files(repo_id: str, revision: str | None, token, role: str) -> list[str]:
    """Which files of a Hub repo a conversion needs, by the role the repo plays."""
    import huggingface_hub

    files = huggingface_hub.HfApi(token=token).list_repo_files(repo_id, revision=revision)
    present = set(files)
    tokenizer = [name for name in _TOKENIZER_FILES if name in present]
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
    if role == "vision-config":
        return [name for name in ("config.json", "preprocessor_config.json") if name in present]
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
    if not _looks_like_repo_id(str(source)):
        hint = {"vision": " Pass --vision-tower.", "vision-config": " Pass --vision-tower."}.get(role, "")
        hint = " Pass --language-model." if role == "language-model" else hint
        raise FileNotFoundError(
            f"{source!r} ({role}) is neither an existing folder nor a Hub repo id of the form org/name.{hint}"
        )
    import huggingface_hub

    patterns = _hub_files(str(source), revision, token, role)
    logger.info("Downloading %d file(s) of %s: %s", len(patterns), source, ", ".join(patterns))
    folder = huggingface_hub.snapshot_download(str(source), revision=revision, allow_patterns=patterns, token=token)
    return Path(folder), str(source)


# ---------------------------------------------------------------------------------------------------------------------
# Renaming of each kind of source
# ---------------------------------------------------------------------------------------------------------------------
def _rename_tower(key: str) -> str | None:
    """HF CLIPModel / SiglipModel (or *VisionModel) checkpoint -> HF name; text-tower keys are dropped."""
    if key.startswith("vision_model."):
        return convert_original_key("model.vision_tower.vision_tower." + key)
    return None


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
        "handles the VideoLLaMA2 / VideoLLaMA2.1 vision checkpoints (Mistral, Mixtral, Qwen2 with a CLIP or SigLIP "
        "tower); audio-visual checkpoints (VideoLLaMA2.1-AV) and other models are not supported. Check that "
        "--vision-tower / --language-model point at the right repositories."
    )


# ---------------------------------------------------------------------------------------------------------------------
# Consistency checks on the tensor shapes (no tensor library: shapes come from the headers)
# ---------------------------------------------------------------------------------------------------------------------
def _check_shapes(tensors: dict[str, _Tensor], vision_config: dict, original_config: dict) -> None:
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
    groups = {
        "vision tower": "model.vision_tower.",
        "connector (mm_projector)": "model.multi_modal_projector.",
        "language model": "model.language_model.",
    }
    missing = [what for what, prefix in groups.items() if not any(name.startswith(prefix) for name in tensors)]
    if "lm_head.weight" not in tensors and not original_config.get("tie_word_embeddings", False):
        missing.append("lm_head")
    if missing:
        raise ValueError(f"The source has no {', '.join(missing)} weights: the checkpoint is incomplete.")


# ---------------------------------------------------------------------------------------------------------------------
# Output shards
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class _Shard:
    filename: str
    tensors: list[_Tensor]

    @property
    def nbytes(self) -> int:
        return sum(tensor.nbytes for tensor in self.tensors)


def parse_size(size: str | int | None) -> int | None:
    """'5GB' -> 5_000_000_000, '2GiB' -> 2 * 2**30, 1000 -> 1000."""
    if size is None or isinstance(size, int):
        return size
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?)B?\s*", size.upper())
    if not match:
        raise ValueError(f"Cannot parse size {size!r}; use e.g. 5GB, 500MB or 2GiB.")
    number, unit, binary = match.groups()
    return int(float(number) * (1024 if binary else 1000) ** " KMGT".index(unit or " "))


def _plan_shards(groups: list[list[_Tensor]], max_shard_size: int | None) -> list[_Shard]:
    """One output shard per source file, or (with `max_shard_size`) tensors packed in order up to that size.
    Within a shard, tensors keep their source order (so contiguous runs copy in one call), stably grouped by
    decreasing element size so every tensor stays aligned to its element size."""
    if max_shard_size:
        packed, current, size = [], [], 0
        for tensor in (tensor for group in groups for tensor in group):
            if current and size + tensor.nbytes > max_shard_size:
                packed.append(current)
                current, size = [], 0
            current.append(tensor)
            size += tensor.nbytes
        groups = packed + [current]
    groups = [sorted(group, key=lambda t: -DTYPE_SIZES[t.dtype]) for group in groups if group]
    total = len(groups)
    return [_Shard(f"model-{i + 1:05d}-of-{total:05d}.safetensors", group) for i, group in enumerate(groups)]


def _write_shards(shards: list[_Shard], folder: Path, on_progress, should_stop) -> None:
    for shard in shards:
        _write_shard(shard, folder / shard.filename, on_progress, should_stop)


def _byte_runs(tensors: list[_Tensor]):
    """('copy', path, start, length) for each run of consecutive bytes of one safetensors source, ('tensor', t) for
    a tensor of a torch pickle, in output order."""
    run = None
    for tensor in tensors:
        if run and tensor.offset is not None and tensor.path == run[0] and tensor.offset == run[1] + run[2]:
            run[2] += tensor.nbytes
            continue
        if run:
            yield ("copy", *run)
            run = None
        if tensor.offset is None:
            yield ("tensor", tensor)
        else:
            run = [tensor.path, tensor.offset, tensor.nbytes]
    if run:
        yield ("copy", *run)


def _write_shard(shard: _Shard, path: Path, on_progress, should_stop) -> None:
    header = _encode_header(shard.tensors, _page_offset(shard.tensors))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sources: dict[Path, int] = {}
    pickles: dict[Path, dict] = {}
    try:
        _write_all(fd, header)
        for kind, *item in _byte_runs(shard.tensors):
            should_stop()
            if kind == "copy":
                source, start, length = item
                if source not in sources:
                    sources[source] = os.open(source, os.O_RDONLY)
                _copy_bytes(sources[source], fd, start, length, on_progress, source)
                continue
            (tensor,) = item  # torch pickle: write the bytes of the memory-mapped tensor
            if tensor.path not in pickles:
                pickles[tensor.path] = _load_torch_file(tensor.path)
            data = _tensor_bytes(pickles[tensor.path][tensor.source_key])
            for start in range(0, len(data), _BUFFER_CHUNK):
                _write_all(fd, data[start : start + _BUFFER_CHUNK])
            on_progress(len(data))
        written, expected = os.fstat(fd).st_size, len(header) + shard.nbytes
        if written != expected:
            raise OSError(f"Wrote {written} bytes to {path}, expected {expected}.")
    finally:
        os.close(fd)
        for source_fd in sources.values():
            os.close(source_fd)
        pickles.clear()


def _tensor_bytes(tensor) -> memoryview:
    import torch

    flat = tensor.detach().contiguous().reshape(-1)
    return memoryview(flat.view(torch.uint8).numpy())


def _write_index(shards: list[_Shard], folder: Path) -> None:
    weight_map = {tensor.name: shard.filename for shard in shards for tensor in shard.tensors}
    index = {
        "metadata": {
            "total_parameters": sum(math.prod(t.shape) for shard in shards for t in shard.tensors),
            "total_size": sum(shard.nbytes for shard in shards),
        },
        "weight_map": dict(sorted(weight_map.items())),
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------------------------
# Everything but the weights: config + remote code, generation config, processor + tokenizer, model card
# ---------------------------------------------------------------------------------------------------------------------
@dataclass
class _Metadata:
    source: str
    source_repo: str | None
    kind: str
    original_config: dict
    vision_config: dict
    image_processor: dict
    vision_tower_id: str
    defaults: dict  # the preset (or one of the same backbone family) giving chat template + generation defaults
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


def _torch_dtype_name(original_config: dict, tensors: list[_Tensor]) -> str:
    names = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}
    dtype = original_config.get("torch_dtype") or original_config.get("dtype")
    if dtype in names.values():
        return dtype
    counts: dict[str, int] = {}
    for tensor in tensors:
        counts[tensor.dtype] = counts.get(tensor.dtype, 0) + tensor.nbytes
    return names.get(max(counts, key=counts.get), "float32")


class _AutoClassRegistration:
    """`register_for_auto_class` on our classes for one `save_pretrained`, then back to how they were (the
    registration is process-global and would make later saves of these classes write remote code too)."""

    def __init__(self, registrations: dict):
        self.registrations = registrations
        self.previous = {}

    def __enter__(self):
        for cls, auto_class in self.registrations.items():
            self.previous[cls] = cls.__dict__.get("_auto_class", _MISSING)
            cls.register_for_auto_class(auto_class)
        return self

    def __exit__(self, *exc_info):
        for cls, previous in self.previous.items():
            if previous is _MISSING:
                del cls._auto_class
            else:
                cls._auto_class = previous


_MISSING = object()


def _write_metadata(meta: _Metadata, folder: Path, should_stop) -> dict:
    """Write config.json (+ remote code), generation_config.json, processor/tokenizer files and README.md."""
    from transformers import GenerationConfig
    from transformers.dynamic_module_utils import get_relative_import_files

    from . import modeling_videollama2
    from .configuration_videollama2 import VideoLlama2Config
    from .pipeline_videollama2 import add_vqa_pipeline_to_folder
    from .processing_videollama2 import load_original_tokenizer

    should_stop()
    tokenizer = load_original_tokenizer(str(meta.tokenizer_dir))
    image_token_id, video_token_id = tokenizer.convert_tokens_to_ids(["<image>", "<video>"])
    config = VideoLlama2Config(
        **convert_config(meta.original_config, meta.vision_config, image_token_id, video_token_id),
        architectures=["VideoLlama2ForConditionalGeneration"],
        dtype=meta.dtype,
    )
    should_stop()
    model_class = modeling_videollama2.VideoLlama2ForConditionalGeneration
    with _AutoClassRegistration({VideoLlama2Config: "AutoConfig", model_class: "AutoModelForImageTextToText"}):
        # The model is never instantiated (a 72B model would not fit): `config.save_pretrained` copies
        # configuration_videollama2.py and writes auto_map["AutoConfig"]; the modeling file (and what it imports
        # relatively) is copied here, as transformers' `custom_object_save` does for a model instance.
        module_file = Path(modeling_videollama2.__file__)
        for file in [module_file, *map(Path, get_relative_import_files(module_file))]:
            shutil.copyfile(file, folder / file.name)
        config.auto_map = {
            model_class._auto_class: f"{module_file.stem}.{model_class.__name__}",
            "AutoModel": f"{module_file.stem}.{modeling_videollama2.VideoLlama2Model.__name__}",
        }
        config.save_pretrained(folder)
    add_vqa_pipeline_to_folder(folder)  # the removed `visual-question-answering` task, as a custom pipeline
    should_stop()
    _write_processor(tokenizer, meta.image_processor, config, meta.defaults["chat_template"], folder)
    generation = GenerationConfig(**meta.defaults["generation"])
    generation.save_pretrained(folder)
    (folder / "README.md").write_text(_model_card(meta, config))
    return {"image_token_id": image_token_id, "video_token_id": video_token_id}


def _write_processor(tokenizer, image_processor_settings: dict, config, chat_template_family: str, folder: Path):
    """processor_config.json, tokenizer files and chat_template.jinja, with the processor classes' remote code."""
    from .processing_videollama2 import VideoLlama2Processor

    processor = VideoLlama2Processor.from_original(tokenizer, image_processor_settings, config, chat_template_family)
    registrations = {VideoLlama2Processor: "AutoProcessor"}
    video_processor = getattr(processor, "video_processor", None)
    if video_processor is not None and not type(video_processor).__module__.startswith("transformers."):
        registrations[type(video_processor)] = "AutoVideoProcessor"
    with _AutoClassRegistration(registrations):
        processor.save_pretrained(folder)


def _model_card(meta: _Metadata, config) -> str:
    text = config.text_config
    tokens = config.get_num_visual_tokens()
    family = {"mistral": "Mistral", "mixtral": "Mixtral (mixture of experts)", "qwen2": "Qwen2"}.get(
        text.model_type, text.model_type
    )
    source_link = (
        f"[{meta.source_repo}](https://huggingface.co/{meta.source_repo})" if meta.source_repo else f"`{meta.source}`"
    )
    front = ["---", "license: apache-2.0", "library_name: transformers", "pipeline_tag: image-text-to-text"]
    if meta.source_repo:
        front.append(f"base_model: {meta.source_repo}")
    front += ["tags:", "- videollama2", "- video-text-to-text", "- multimodal", "---", ""]
    kind = (
        "stage-1 (Base) model: the pre-trained connector, with the vision tower and language model it was trained on"
        if meta.kind == "base"
        else "chat model"
    )
    lm = f" (from `{meta.language_model}`)" if meta.language_model else ""
    title = meta.output_name
    example = meta.repo_id or f"your-name/{title}"
    tower_from = f", settings from `{meta.vision_tower_source}`" if meta.vision_tower_source else ""
    return "\n".join(
        front
        + [
            f"# {title}",
            "",
            f"VideoLLaMA2 {kind}, converted to the native transformers-5 format by `videollama2-hf convert`. "
            "VideoLLaMA2 answers questions about videos and images: a vision tower encodes every frame, a "
            "spatial-temporal connector turns the frames into a few hundred tokens, and a language model reads them.",
            "",
            f"- **Source**: {source_link} (original DAMO-NLP-SG layout); preset: "
            f"{meta.preset_name or 'none (settings derived from config.json)'}",
            f"- **Language model**: {family}{lm}, {text.num_hidden_layers} layers, hidden size {text.hidden_size}, "
            f"vocabulary {text.vocab_size}",
            f"- **Vision tower**: `{meta.vision_tower_id}` ({config.vision_config.model_type}, "
            f"{config.vision_config.image_size}px, patch {config.vision_config.patch_size}{tower_from})",
            f"- **Connector**: `{config.projector_type}`, {config.num_frames} frames per video",
            f"- **Visual tokens**: {tokens} per video and {tokens} per image (an image is repeated to "
            f"{config.num_frames} frames, as the original does); placeholders `<image>` = {config.image_token_id}, "
            f"`<video>` = {config.video_token_id}",
            f"- **Weights**: {meta.num_tensors} tensors, {meta.total_bytes / 1e9:.2f} GB in {meta.num_shards} "
            f"safetensors shard(s), `{meta.dtype}`, copied bit for bit from the source (only the names change)",
            f"- **Generation defaults**: {json.dumps(meta.defaults['generation'])} (greedy, as the original "
            "inference code)",
            "- **Licence**: Apache-2.0, as the original release; the language model's own licence applies too.",
            "",
            "## Usage",
            "",
            "The folder carries its own code (`auto_map`), so it loads with transformers alone and "
            "`trust_remote_code=True`; with the `videollama2-hf` package installed, `import videollama2_hf` "
            "registers the classes and `trust_remote_code` is not needed.",
            "",
            "### Video",
            "",
            "```python",
            "import torch",
            "from transformers import AutoModelForImageTextToText, AutoProcessor",
            "",
            f'model_id = "{example}"',
            "model = AutoModelForImageTextToText.from_pretrained(",
            '    model_id, dtype=torch.bfloat16, device_map="auto", trust_remote_code=True',
            ")",
            "processor = AutoProcessor.from_pretrained(model_id, trust_remote_code=True)",
            "messages = [",
            "    {",
            '        "role": "user",',
            '        "content": [',
            '            {"type": "video", "path": "video.mp4"},',
            '            {"type": "text", "text": "What happens in this video?"},',
            "        ],",
            "    }",
            "]",
            "inputs = processor.apply_chat_template(",
            '    messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"',
            ").to(model.device)",
            "output = model.generate(**inputs, max_new_tokens=128)",
            'print(processor.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[0])',
            "```",
            "",
            "### Image",
            "",
            'Same as above with `{"type": "image", "url": "https://.../image.jpg"}` (or `"path"`) in the message.',
            "",
            "### Pipeline",
            "",
            "```python",
            "from transformers import pipeline",
            "",
            f'pipe = pipeline("image-text-to-text", model="{example}", trust_remote_code=True)',
            'messages = [{"role": "user", "content": [{"type": "image", "url": "https://.../image.jpg"},',
            '                                         {"type": "text", "text": "Describe the image."}]}]',
            'print(pipe(text=messages, max_new_tokens=64, return_full_text=False)[0]["generated_text"])',
            "",
            "# visual question answering (a custom pipeline shipped in this repository)",
            f'vqa = pipeline("visual-question-answering", model="{example}", trust_remote_code=True)',
            'print(vqa(video="clip.mp4", question="What happens in the video?"))  # [{"answer": "..."}]',
            "```",
            "",
        ]
    )


# ---------------------------------------------------------------------------------------------------------------------
# --verify
# ---------------------------------------------------------------------------------------------------------------------
def verify_conversion(folder: Path, shards: list[_Shard]) -> dict:
    """Reload `folder` with `from_pretrained` (in the saved dtype), compare every tensor with its source bit for bit
    (source files read one at a time) and run one forward pass on a tiny image prompt."""
    import torch
    from transformers.core_model_loading import revert_weight_conversion

    from .modeling_videollama2 import VideoLlama2ForConditionalGeneration

    dtypes = {tensor.dtype for shard in shards for tensor in shard.tensors}
    torch_dtypes = {name: dtype for dtype, name in _torch_dtypes().items()}
    load_dtype = torch_dtypes[dtypes.pop()] if len(dtypes) == 1 else torch.float32  # mixed: exact upcast
    model, info = VideoLlama2ForConditionalGeneration.from_pretrained(
        folder, dtype=load_dtype, output_loading_info=True
    )
    state = revert_weight_conversion(model, model.state_dict())  # back to the on-disk (HF) names
    by_source: dict[Path, list[_Tensor]] = {}
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
            source = _load_torch_file(path)
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


# What a conversion writes: `--overwrite` replaces a folder only if it holds nothing else (or nothing at all).
_CONVERSION_FILE_PATTERN = re.compile(
    r"model(-\d{5}-of-\d{5})?\.safetensors|model\.safetensors\.index\.json|config\.json|generation_config\.json"
    r"|processor_config\.json|preprocessor_config\.json|video_preprocessor_config\.json|chat_template\.(jinja|json)"
    r"|tokenizer(_config)?\.json|tokenizer\.model|special_tokens_map\.json|added_tokens\.json|vocab\.json"
    r"|merges\.txt|README\.md|[a-z_0-9]+_videollama2\.py"
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
    foreign = []
    for entry in entries:
        if entry.name == _HUB_UPLOAD_CACHE and entry.is_dir() and {p.name for p in entry.iterdir()} <= {"huggingface"}:
            continue
        if entry.is_symlink() or not entry.is_file() or not _CONVERSION_FILE_PATTERN.fullmatch(entry.name):
            foreign.append(entry.name + ("/" if entry.is_dir() else ""))
    return foreign


def _check_destination(output_dir: Path, overwrite: bool) -> None:
    """Refuse any output folder whose replacement would delete something a conversion did not write."""
    if not (output_dir.exists() or output_dir.is_symlink()):
        return
    if output_dir.is_symlink() or not output_dir.is_dir():
        raise FileExistsError(f"{output_dir} exists and is not a folder; choose another output folder.")
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


def _publish(tmp: Path, output_dir: Path, overwrite: bool) -> None:
    """Move the finished folder into place (a rename on the same filesystem); an earlier conversion it replaces is
    renamed aside first and deleted only once the new one is in place."""
    if output_dir.is_dir() and not output_dir.is_symlink() and not any(output_dir.iterdir()):
        output_dir.rmdir()
    if not output_dir.exists():
        os.rename(tmp, output_dir)
        return
    _check_destination(output_dir, overwrite)  # changed while converting?
    old = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".replaced", dir=output_dir.parent))
    os.rename(output_dir, old / output_dir.name)
    try:
        os.rename(tmp, output_dir)
    except BaseException:
        os.rename(old / output_dir.name, output_dir)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _language_model_source(original_config: dict, preset: dict | None) -> str:
    name = original_config.get("_name_or_path") or ""
    if name and (Path(name).expanduser().is_dir() or _looks_like_repo_id(name)):
        return name
    if preset is not None:
        return preset["language_model"]
    raise ValueError(
        f"This Base checkpoint does not say which language model it extends (config.json _name_or_path = {name!r}); "
        "pass --language-model with its folder or Hub repo id."
    )


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{what}: {path} is missing.")
    return json.loads(path.read_text())


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
    Tensors are renamed through `ORIGINAL_TO_HF_KEY_PATTERNS` and copied byte for byte, one output shard per source
    file (or re-sharded to `max_shard_size`). The result is written to a temporary folder beside `output_dir` and
    renamed into place only when everything (and `verify`) succeeded.
    """
    timings, start = {}, time.perf_counter()
    output_dir = Path(output_dir).expanduser().absolute()
    _check_destination(output_dir, overwrite)

    folder, source_repo = _resolve_folder(source, "checkpoint", source_revision, token)
    if output_dir.resolve() == folder.resolve() or folder.resolve() in output_dir.resolve().parents:
        raise ValueError(f"The output folder {output_dir} must not be the source folder or inside it.")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"Not a VideoLLaMA2 checkpoint: {folder} has no config.json.")
    original_config = json.loads((folder / "config.json").read_text())
    family = language_model_type(original_config)
    if "mm_audio_tower" in original_config:
        raise ValueError(
            "Audio-visual VideoLLaMA2 checkpoints (mm_audio_tower) are not supported: the transformers port has no "
            "audio tower yet."
        )
    kind = _checkpoint_kind(folder)
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
    defaults = chosen or _family_defaults(family)
    tower_id = original_config["mm_vision_tower"]

    # Vision tower: config + image-processor settings, and for Base checkpoints its weights.
    tower_folder = None
    known = None
    tower_role = "vision" if kind == "base" else "vision-config"
    if vision_tower is not None:
        tower_folder, tower_repo = _resolve_folder(vision_tower, tower_role, None, token)
        tower_id = tower_repo or tower_id
    else:
        known = known_vision_tower(tower_id)  # every preset of a tower describes it identically
        tower_id = known["id"] if known else tower_id  # a local path recorded at training -> the Hub id
        if kind == "base" or known is None:
            tower_folder, _ = _resolve_folder(tower_id, tower_role, None, token)
    if known is not None:
        vision_config, image_processor = known["config"], known["image_processor"]
    else:
        vision_config = _read_json(tower_folder / "config.json", "vision tower config")
        image_processor = _read_json(tower_folder / "preprocessor_config.json", "vision tower image processor")

    unknown: list = []
    language_model_name = None
    if kind == "chat":
        groups = [
            _source_tensors(path, convert_original_key, unknown) for path in _weight_files(folder, "the checkpoint")
        ]
        tokenizer_dir = folder
    else:
        language_model_name = str(language_model or _language_model_source(original_config, chosen))
        lm_folder, _ = _resolve_folder(language_model_name, "language-model", None, token)
        groups = [
            _source_tensors(path, _rename_language_model, unknown)
            for path in _weight_files(lm_folder, "the language model")
        ]
        groups += [
            _source_tensors(path, _rename_tower, unknown) for path in _weight_files(tower_folder, "the vision tower")
        ]
        groups.append(_source_tensors(folder / _PROJECTOR_FILE, _rename_projector, unknown))
        has_tokenizer = any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer.model"))
        tokenizer_dir = folder if has_tokenizer else lm_folder
    _raise_unknown(unknown)
    tensors: dict[str, _Tensor] = {}
    for tensor in (tensor for group in groups for tensor in group):
        if tensor.name in tensors:
            other = tensors[tensor.name]
            raise ValueError(
                f"Two source tensors become {tensor.name}: {other.source_key} ({other.path.name}) and "
                f"{tensor.source_key} ({tensor.path.name}). The source mixes two checkpoints."
            )
        tensors[tensor.name] = tensor
    _check_shapes(tensors, vision_config, original_config)
    shards = _plan_shards(groups, parse_size(max_shard_size))
    total_bytes = sum(shard.nbytes for shard in shards)
    timings["plan"] = time.perf_counter() - start

    meta = _Metadata(
        source=str(source),
        source_repo=source_repo,
        kind=kind,
        original_config=original_config,
        vision_config=vision_config,
        image_processor=image_processor,
        vision_tower_id=tower_id,
        defaults=defaults,
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
            result = _write_metadata(meta, tmp, should_stop)
            timings["metadata"] = time.perf_counter() - began
            return result

        worker = _Worker(metadata)
        worker.start()
        began = time.perf_counter()
        from tqdm.auto import tqdm

        with tqdm(
            total=total_bytes, unit="B", unit_scale=True, desc="Converting weights", disable=None if progress else True
        ) as bar:
            _write_shards(shards, tmp, bar.update, worker.check_failed)
        _write_index(shards, tmp)
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
        _publish(tmp, output_dir, overwrite)
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


if __name__ == "__main__":
    import sys

    from .cli import main

    sys.exit(main(["convert", *sys.argv[1:]]))
