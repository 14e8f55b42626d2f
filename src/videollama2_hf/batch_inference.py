# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""`videollama2-hf batch`: answer one question per item of a folder or manifest, appending one JSON line per item.

* Overlap: a torch `DataLoader` decodes and preprocesses the media of the next batches in worker processes while the
  model answers the current one; each item is processed alone (exactly as `ask` processes it, so a corrupt file is
  that item's error line) and the collate left-pads the rows into one batch, whatever their modalities.
* Crash safety: answers are appended whole and fsynced per batch (`batch_output`); a restart skips every id already
  written, in the output or in any shard.
* Scale-out: under `accelerate launch`, accelerate's `PartialState` splits the unanswered items between the
  processes, each on its own device and writing its own shard; the main process merges them in input order.

Greedy answers equal `ask`'s for the same item alone: each row's tokens stop at its first end-of-sequence token.
"""

import logging
import os
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from .batch_inputs import BatchItem, read_items
from .batch_output import AnswerFile, AnswerWriter, merge_answers, read_answered, remove_answers, shard_path
from .inference import build_messages, check_model_folder, load_media, load_model_and_processor, resolve_device


logger = logging.getLogger(f"transformers.{__name__}")

LOG_EVERY_S = 30.0  # progress lines when stderr is no terminal
# The processes of a launch wait for each other at the end, before the merge: as long as the slowest one needs.
BARRIER_TIMEOUT = timedelta(days=7)


@dataclass
class PreparedItem:
    """One item after its media were decoded and processed (in a loader worker): model inputs, or the error."""

    index: int
    inputs: dict | None
    error: str | None
    prepare_s: float


@dataclass
class PreparedBatch:
    items: list[PreparedItem]
    inputs: dict | None  # the ready items' inputs, left-padded into one batch (None if every item failed)


def one_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split()) or 'no details'}"


class ItemDataset(Dataset):
    """Item i -> its model inputs, processed alone as `ask` processes them."""

    def __init__(self, items: list[BatchItem], processor, num_frames: int | None, with_audio: bool):
        self.items, self.processor, self.with_audio = items, processor, with_audio
        self.processor_kwargs = {} if num_frames is None else {"num_frames": num_frames}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> PreparedItem:
        item = self.items[index]
        start = time.perf_counter()
        hears = self.with_audio and item.kind == "video"
        try:
            media = load_media(**{item.kind: item.source}, with_audio=hears)
            inputs = self.processor.apply_chat_template(
                build_messages(item.question, media, hears),
                add_generation_prompt=True,
                tokenize=True,
                return_dict=True,
                return_tensors="pt",
                load_audio_from_video=hears,
                processor_kwargs=self.processor_kwargs,
            )
        except Exception as error:  # a missing, corrupt or silent file is this item's answer line, not the job's end
            return PreparedItem(index, None, one_line(error), time.perf_counter() - start)
        inputs = {key: value for key, value in inputs.items() if isinstance(value, torch.Tensor)}
        return PreparedItem(index, inputs, None, time.perf_counter() - start)


class LeftPaddingCollator:
    """Rows left-padded by the tokenizer; the media tensors of the rows concatenated in row order, which is the
    order of their placeholders in the batch."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def __call__(self, items: list[PreparedItem]) -> PreparedBatch:
        ready = [item for item in items if item.inputs is not None]
        if not ready:
            return PreparedBatch(items, None)
        text = [{key: item.inputs[key][0] for key in ("input_ids", "attention_mask")} for item in ready]
        inputs = dict(self.tokenizer.pad(text, padding=True, padding_side="left", return_tensors="pt"))
        for key in dict.fromkeys(key for item in ready for key in item.inputs):
            if key not in inputs:
                inputs[key] = torch.cat([item.inputs[key] for item in ready if key in item.inputs])
        return PreparedBatch(items, inputs)


class Progress:
    """A tqdm bar on a terminal; otherwise a log line every LOG_EVERY_S seconds (and at the end)."""

    def __init__(self, total: int, already: int, rank: int, num_processes: int, enabled: bool = True):
        self.total, self.done, self.errors = total, 0, 0
        self.prefix = f"rank {rank}: " if num_processes > 1 else ""
        self.start = self.last_log = time.monotonic()
        self.bar = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, unit="item", desc=self.prefix.rstrip(": ") or None, position=rank)
        self.enabled = enabled
        if enabled and already:
            logger.info("%s%d items already answered, %d to go.", self.prefix, already, total)

    def update(self, answered: int, errors: int) -> None:
        self.done += answered
        self.errors += errors
        if self.bar is not None:
            self.bar.update(answered)
            if errors:
                self.bar.set_postfix(errors=self.errors)
        elif self.enabled and time.monotonic() - self.last_log >= LOG_EVERY_S:
            self.log()

    def log(self) -> None:
        elapsed = time.monotonic() - self.start
        rate = self.done / elapsed if elapsed else 0.0
        eta = (self.total - self.done) / rate if rate else float("nan")
        logger.info(
            "%sanswered %d/%d items (%d errors), %.2f items/s, ETA %s",
            self.prefix,
            self.done,
            self.total,
            self.errors,
            rate,
            "?" if eta != eta else str(timedelta(seconds=round(eta))),
        )
        self.last_log = time.monotonic()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            self.log()


def _record(item: BatchItem, **fields) -> dict:
    return {"id": item.id, item.kind: item.source, "question": item.question, **fields}


def _end_of_answer(tokens: list[int], eos_ids: set[int]) -> list[int]:
    """A row's generated tokens up to its first end-of-sequence token (included), what `generate` gives it alone."""
    for position, token in enumerate(tokens):
        if token in eos_ids:
            return tokens[: position + 1]
    return tokens


class Answerer:
    """The model's side: greedy (or sampled) answers of one padded batch, as answer lines."""

    def __init__(self, model, processor, generate_kwargs: dict):
        self.model, self.processor, self.generate_kwargs = model, processor, generate_kwargs
        eos = model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])

    def answer(self, items: list[BatchItem], batch: PreparedBatch, collate) -> list[dict]:
        records = [
            _record(items[prepared.index], error=prepared.error, prepare_s=round(prepared.prepare_s, 3))
            for prepared in batch.items
            if prepared.inputs is None
        ]
        ready = [prepared for prepared in batch.items if prepared.inputs is not None]
        if ready:
            records += self._generate(items, ready, batch.inputs, collate)
        return records

    def _generate(self, items, ready: list[PreparedItem], inputs: dict, collate) -> list[dict]:
        try:
            new_tokens, seconds = self._run(inputs)
        except (torch.OutOfMemoryError, ValueError) as error:
            # what one item can cause (too long for the memory or the model): that item's error line; anything
            # else (a broken device, a bug) stops the job, whose answers so far are kept
            if len(ready) == 1:
                return [_record(items[ready[0].index], error=one_line(error), prepare_s=round(ready[0].prepare_s, 3))]
            logger.warning("%s on a batch of %d: answering its items one at a time.", type(error).__name__, len(ready))
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            alone = [self._generate(items, [item], collate([item]).inputs, collate) for item in ready]
            return [record for records in alone for record in records]
        answers = self.processor.post_process_image_text_to_text(new_tokens)
        records = []
        prompt_lengths = inputs["attention_mask"].sum(1).tolist()
        for prepared, tokens, answer, prompt_tokens in zip(ready, new_tokens, answers, prompt_lengths):
            records.append(
                _record(
                    items[prepared.index],
                    answer=answer,
                    prompt_tokens=prompt_tokens,
                    answer_tokens=len(tokens),
                    prepare_s=round(prepared.prepare_s, 3),
                    generate_s=round(seconds, 3),
                    batch_size=len(ready),
                )
            )
        return records

    def _run(self, inputs: dict) -> tuple[list[list[int]], float]:
        inputs = {key: value.to(self.model.device) for key, value in inputs.items()}
        start = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**inputs, **self.generate_kwargs)
        seconds = time.perf_counter() - start
        rows = output[:, inputs["input_ids"].shape[1] :].tolist()
        return [_end_of_answer(row, self.eos_ids) for row in rows], seconds


def _distributed_state(device: str):
    """accelerate's state of this process. A launch of several processes on a machine without accelerator (or with
    `--device cpu`) is a CPU launch (gloo)."""
    from accelerate import PartialState

    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if launched and device not in ("auto", "cpu"):
        raise ValueError(
            f"--device {device}: under `accelerate launch` each process takes its own device (cuda:LOCAL_RANK); "
            "leave --device out, or pass --device cpu for CPU processes."
        )
    cpu = device == "cpu" or resolve_device(device) == "cpu"
    return PartialState(cpu=cpu, timeout=BARRIER_TIMEOUT) if launched else PartialState(cpu=cpu)


def default_num_workers(num_local_processes: int = 1) -> int:
    """Loader workers per process: the CPUs of the machine shared between its processes, 1 to 4."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cpus // max(1, num_local_processes)))


def run_batch(
    model_id: str,
    input_path,
    output_path,
    question: str | None = None,
    batch_size: int = 8,
    num_frames: int | None = None,
    max_new_tokens: int = 512,
    with_audio: bool = False,
    overwrite: bool = False,
    num_workers: int | None = None,
    device: str = "auto",
    dtype: str = "auto",
    num_threads: int | None = None,
    do_sample: bool = False,
    temperature: float | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    progress: bool = True,
) -> dict:
    """Answer every item of `input_path` not yet in `output_path` (or its shards) and merge the answers into
    `output_path` in input order; returns a summary on the main process (an empty dict on the others)."""
    output = Path(output_path).expanduser().absolute()
    items = read_items(input_path, question)
    if output.is_dir():
        raise IsADirectoryError(f"--output {output} is a folder; give the JSONL file to write.")
    if output == Path(input_path).expanduser().absolute():
        raise ValueError("--output is the input file; write the answers to another file.")
    hears = with_audio or any(item.kind == "audio" for item in items)
    check_model_folder(model_id, audio=hears)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the loader forks after the tokenizer has run
    state = _distributed_state(device)
    rank, num_processes = state.process_index, state.num_processes
    if num_threads:
        torch.set_num_threads(num_threads)
    if overwrite and state.is_main_process:
        remove_answers(output)
    state.wait_for_everyone()  # every process reads the answer files as they are before anyone writes
    answers, shards = read_answered(output)
    answered = {key for source in (answers, *shards) for key in source.keys()}
    remaining = [item for item in items if item.key not in answered]
    state.wait_for_everyone()
    if num_workers is None:
        num_workers = default_num_workers(num_processes)
    start = time.perf_counter()
    with state.split_between_processes(remaining) as mine:
        mine = list(mine)
    if mine:
        own = answers if num_processes == 1 else AnswerFile.read(shard_path(output, rank))
        _answer_items(
            mine,
            own,
            model_id,
            device=str(state.device) if num_processes > 1 else device,
            dtype=dtype,
            hears=hears,
            batch_size=batch_size,
            num_frames=num_frames,
            with_audio=with_audio,
            num_workers=num_workers,
            generate_kwargs=_generate_kwargs(max_new_tokens, do_sample, temperature, top_p),
            seed=None if seed is None else seed + rank,
            progress=Progress(len(mine), len(answered), rank, num_processes, enabled=progress),
        )
    state.wait_for_everyone()
    seconds = time.perf_counter() - start
    if not state.is_main_process:
        return {}
    merged = merge_answers(output, [item.key for item in items])
    if merged["errors"]:
        logger.warning("%d items could not be answered: their lines in %s hold the error.", merged["errors"], output)
    return {
        "output": str(output),
        "items": len(items),
        "answered_before": len(answered & {item.key for item in items}),
        "answered_now": len(remaining),
        "errors": merged["errors"],
        "processes": num_processes,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "seconds": round(seconds, 3),
        "items_per_s": round(len(remaining) / seconds, 3) if remaining and seconds else None,
    }


def _generate_kwargs(max_new_tokens, do_sample, temperature, top_p) -> dict:
    kwargs = {"max_new_tokens": max_new_tokens, "do_sample": do_sample}
    if do_sample:
        kwargs.update({key: value for key, value in (("temperature", temperature), ("top_p", top_p)) if value})
    return kwargs


def _answer_items(
    mine,
    own: AnswerFile,
    model_id,
    *,
    device,
    dtype,
    hears,
    batch_size,
    num_frames,
    with_audio,
    num_workers,
    generate_kwargs,
    seed,
    progress: Progress,
) -> None:
    writer = AnswerWriter(own)
    try:
        model, processor = load_model_and_processor(model_id, dtype=dtype, device=device, audio=hears)
        if seed is not None:
            from transformers import set_seed

            set_seed(seed)
        tokenizer = processor.tokenizer
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        generate_kwargs = {"pad_token_id": tokenizer.pad_token_id, **generate_kwargs}
        collate = LeftPaddingCollator(tokenizer)
        loader = DataLoader(
            ItemDataset(mine, processor, num_frames, with_audio),
            batch_size=batch_size,
            collate_fn=collate,
            num_workers=num_workers,
            prefetch_factor=2 if num_workers else None,
            pin_memory=model.device.type == "cuda",
        )
        answerer = Answerer(model, processor, generate_kwargs)
        for batch in loader:
            records = answerer.answer(mine, batch, collate)
            writer.write(records)
            progress.update(len(records), sum("error" in record for record in records))
    finally:
        progress.close()
        writer.close()


__all__ = ["default_num_workers", "run_batch"]
