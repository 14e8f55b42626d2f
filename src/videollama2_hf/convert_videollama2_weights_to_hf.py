# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Convert a released DAMO-NLP-SG VideoLLaMA2 checkpoint into a self-contained transformers-5 folder.

Four steps: plan (`conversion_plan`: find the sources, rename and check their tensors from the safetensors headers,
lay out the shards), write (here: the metadata — config, generation defaults, processor, tokenizer, chat template,
remote code, model card — on a worker thread while the kernel copies the weights into a temporary folder), verify
(`conversion_verify`, optional) and publish (`converted_folder.publish` moves the folder into place;
`hub.push_folder_to_hub` uploads it). What a release is comes from `original_layout`.

The weight copy needs no tensor library; the metadata step imports torch through the model classes whose
`save_pretrained` writes the config and processor (bench/convert.py measures the cost).

Entry points: `convert_videollama2_checkpoint(...)` (library) and `videollama2-hf convert ...` (`cli.py`).
"""

import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .conversion_plan import ConversionPlan, plan_conversion
from .conversion_verify import verify_conversion
from .converted_folder import check_destination, publish, write_metadata
from .hub import push_folder_to_hub
from .safetensors_copy import write_index, write_shards


# A child of transformers' library logger (its verbosity and handler apply) without importing transformers, which
# the weight copy does not need.
logger = logging.getLogger(f"transformers.{__name__}")


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


def _write(plan: ConversionPlan, folder: Path, progress: bool, timings: dict) -> dict:
    """Write the metadata (on a worker thread) and the weight shards into `folder`; returns the token ids."""
    if any(tensor.offset is None for shard in plan.shards for tensor in shard.tensors):
        import torch  # noqa: F401  (imported here, not concurrently by two threads)

    def metadata(should_stop):
        began = time.perf_counter()
        result = write_metadata(plan.metadata, folder, should_stop)
        timings["metadata"] = time.perf_counter() - began
        return result

    worker = _Worker(metadata)
    worker.start()
    try:
        began = time.perf_counter()
        with _progress(plan.total_bytes, "Converting weights", enabled=progress) as advance:
            write_shards(plan.shards, folder, advance, worker.check_failed)
        write_index(plan.shards, folder)
        timings["weights"] = time.perf_counter() - began
    finally:
        if worker.is_alive() and sys.exc_info()[0] is not None:
            worker.cancelled.set()
        worker.join()
    worker.check_failed()
    return worker.result


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
    plan = plan_conversion(
        source,
        output_dir,
        preset=preset,
        vision_tower=vision_tower,
        language_model=language_model,
        source_revision=source_revision,
        max_shard_size=max_shard_size,
        repo_id=push_to_hub,
        token=token,
    )
    timings["plan"] = time.perf_counter() - start

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.", suffix=".partial", dir=output_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes it private; the published folder gets the usual permissions
    try:
        token_ids = _write(plan, tmp, progress, timings)
        verification = None
        if verify:
            began = time.perf_counter()
            verification = verify_conversion(tmp, plan.shards)
            timings["verify"] = time.perf_counter() - began
            logger.info("Verification: %s", json.dumps(verification))
            if not verification["ok"]:
                raise ValueError(
                    "Verification failed: "
                    + json.dumps({key: value for key, value in verification.items() if value}, default=str)[:2000]
                )
        publish(tmp, output_dir, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result = ConversionResult(
        output_dir=output_dir,
        kind=plan.metadata.kind,
        preset=plan.metadata.preset_name,
        num_tensors=plan.num_tensors,
        total_bytes=plan.total_bytes,
        shards=[shard.filename for shard in plan.shards],
        token_ids=token_ids,
        timings=timings,
        verification=verification,
    )
    logger.info(
        "Wrote %s: %d tensors, %.2f GB in %d shard(s)",
        output_dir,
        plan.num_tensors,
        plan.total_bytes / 1e9,
        len(plan.shards),
    )
    if push_to_hub:
        began = time.perf_counter()
        result.repo_url = push_folder_to_hub(
            output_dir, push_to_hub, private=private, revision=revision, commit_message=commit_message, token=token
        )
        timings["push"] = time.perf_counter() - began
    timings["total"] = time.perf_counter() - start
    return result


__all__ = ["ConversionResult", "convert_videollama2_checkpoint"]
