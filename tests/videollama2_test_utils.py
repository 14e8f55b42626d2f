"""Tiny checkpoints for the Auto-class, pipeline, CLI and README tests, built from the parity fixtures.

* `original_folder`: a released-layout checkpoint (original config.json, tensor names and tokenizer) with its tiny
  vision tower in a `vision_tower/` sub-folder, so it loads with no extra argument (files are symlinked);
* `converted_folder`: the same checkpoint loaded directly and written with `save_pretrained` (HF layout, processor).
"""

import json
import os
from pathlib import Path

import torch


ORIGINAL_PLACEHOLDER = {"video": -201, "image": -200}


def original_folder(fixtures_dir: Path, variant: str, destination: Path) -> Path:
    """`destination` holding the variant's original checkpoint and its tower under `vision_tower/`."""
    source = fixtures_dir / variant
    destination.mkdir(parents=True, exist_ok=True)
    for path in (source / "original_checkpoint").iterdir():
        os.symlink(path, destination / path.name)
    os.symlink(source / "vision_tower", destination / "vision_tower")
    return destination


def converted_folder(fixtures_dir: Path, variant: str, destination: Path, dtype=torch.float32) -> Path:
    """The variant loaded from its original layout, saved in the transformers layout with its processor."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import videollama2_hf  # noqa: F401

    checkpoint = fixtures_dir / variant / "original_checkpoint"
    tower = fixtures_dir / variant / "vision_tower"
    model = AutoModelForImageTextToText.from_pretrained(checkpoint, vision_tower=tower, dtype=dtype)
    model.save_pretrained(destination)
    AutoProcessor.from_pretrained(checkpoint, vision_tower=tower).save_pretrained(destination)
    return destination


def reference_case(fixtures_dir: Path, variant: str, name: str) -> dict:
    return json.loads((fixtures_dir / variant / "reference.json").read_text())["cases"][name]


def expanded_ids(case: dict, name: str, token_id: int) -> list[int]:
    """The original's ids with its single placeholder id replaced by the run of our placeholder token."""
    ids = []
    for token in case["input_ids"]:
        ids += [token_id] * case["num_visual_tokens"] if token == ORIGINAL_PLACEHOLDER[name] else [token]
    return ids
