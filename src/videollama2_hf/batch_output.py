# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""The answer files of `videollama2-hf batch`: JSON lines appended whole, flushed and fsynced per batch, so that a
kill at any moment loses at most the batch being answered and never leaves a line a JSONL reader chokes on.

A run of K processes writes one shard per process beside the output (`answers.jsonl.shard<rank>`); at the end the
main process merges the output and every shard into the output, in input order, through a temporary file and an
atomic rename, then removes the shards. An id is looked up in all of them, so a restart with another number of
processes still skips every answered item. Torch-free.
"""

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path


logger = logging.getLogger(f"transformers.{__name__}")


def shard_path(output: Path, rank: int) -> Path:
    return output.with_name(f"{output.name}.shard{rank}")


def shard_paths(output: Path) -> list[Path]:
    """The shards of `output` left by this or an earlier run (any number of processes), by rank."""
    pattern = re.compile(rf"{re.escape(output.name)}\.shard(\d+)")
    if not output.parent.is_dir():
        return []
    found = [(int(match[1]), path) for path in output.parent.iterdir() if (match := pattern.fullmatch(path.name))]
    return [path for _, path in sorted(found)]


@dataclass
class AnswerFile:
    """The whole lines of one answer file: `(key, offset, length)` per line, and where the whole lines end (a line
    cut by a crash, and only the last line can be, lies past `valid_length`)."""

    path: Path
    lines: list[tuple[str, int, int]]
    valid_length: int
    torn_bytes: int

    @classmethod
    def read(cls, path: Path) -> "AnswerFile":
        lines, offset, torn = [], 0, 0
        if not path.exists():
            return cls(path, lines, 0, 0)
        with open(path, "rb") as file:
            for number, line in enumerate(file, 1):
                key = _line_key(line)
                if key is None:
                    if file.read(1) or not _is_torn(line):  # not the cut end of a write: a file that is not ours
                        raise ValueError(
                            f"{path}:{number} is not an answer line of `videollama2-hf batch`; move the file away, "
                            "or pass --overwrite to replace it."
                        )
                    torn = len(line)
                    break
                lines.append((key, offset, len(line)))
                offset += len(line)
        return cls(path, lines, offset, torn)

    def keys(self) -> list[str]:
        return [key for key, _, _ in self.lines]


# Every answer line starts so (the id comes first): a torn line is a cut copy of this start and more, or the zeros a
# crash of the machine can leave in a file's last block. Anything else is not ours and is never dropped.
LINE_START = b'{"id": '


def _line_key(line: bytes) -> str | None:
    """The id of a whole answer line; None for a torn one (no newline, or cut inside the JSON)."""
    if not line.endswith(b"\n"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or "id" not in record or not ("answer" in record or "error" in record):
        return None
    return str(record["id"])


def _is_torn(line: bytes) -> bool:
    return line.startswith(LINE_START) or LINE_START.startswith(line) or not line.strip(b"\0")


def _warn_torn(answers: "AnswerFile") -> None:
    logger.warning(
        "Dropped the torn last line of %s (%d bytes) left by an interrupted run; its item is answered again.",
        answers.path,
        answers.torn_bytes,
    )


class AnswerWriter:
    """Appends whole lines to one answer file, after dropping the torn last line an interrupted run may have left."""

    def __init__(self, answers: AnswerFile):
        self.path = answers.path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        self.file = open(self.path, "ab")  # noqa: SIM115 (open for the whole run, closed by close())
        if answers.torn_bytes:
            _warn_torn(answers)
            self.file.truncate(answers.valid_length)
            os.fsync(self.file.fileno())
        if created:
            _fsync_folder(self.path.parent)

    def write(self, records: list[dict]) -> None:
        """One write of whole lines, then flush and fsync: after a crash the file ends with this batch or the one
        before it (plus at worst a torn tail, dropped at the next start)."""
        if not records:
            return
        self.file.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records).encode())
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()


def read_answered(output: Path) -> tuple[AnswerFile, list[AnswerFile]]:
    """The output and its shards as they are on disk."""
    return AnswerFile.read(output), [AnswerFile.read(path) for path in shard_paths(output)]


def merge_answers(output: Path, input_keys: list[str]) -> dict:
    """The output and its shards merged into the output: one line per id (the first found), ids of the input in its
    order, then any others (an earlier input's) as found. Written to a temporary file, fsynced and renamed over the
    output, then the shards are removed; a crash in between leaves duplicates that the next merge drops. Returns
    counts of the merged file."""
    answers, shards = read_answered(output)
    sources = [source for source in (answers, *shards) if source.path.exists()]
    where: dict[str, tuple[int, int, int]] = {}
    for index, source in enumerate(sources):
        for key, offset, length in source.lines:
            where.setdefault(key, (index, offset, length))
    known = set(input_keys)
    order = [key for key in input_keys if key in where]
    order += [key for key in where if key not in known]
    in_place = output.exists() and not shards and answers.keys() == order and not answers.torn_bytes
    if not in_place:
        for source in sources:
            if source.torn_bytes:
                _warn_torn(source)
        temporary = output.with_name(f".{output.name}.merging-{os.getpid()}")
        handles = [open(source.path, "rb") for source in sources]  # noqa: SIM115 (closed below)
        try:
            with open(temporary, "wb") as merged:
                for key in order:
                    index, offset, length = where[key]
                    handles[index].seek(offset)
                    merged.write(handles[index].read(length))
                merged.flush()
                os.fsync(merged.fileno())
            os.replace(temporary, output)
            _fsync_folder(output.parent)
        finally:
            for handle in handles:
                handle.close()
            temporary.unlink(missing_ok=True)
        for shard in shards:
            shard.path.unlink(missing_ok=True)
    with open(output, "rb") as merged:
        errors = sum("error" in json.loads(line) for line in merged)
    return {"lines": len(order), "errors": errors, "rewritten": not in_place}


def remove_answers(output: Path) -> None:
    """--overwrite: the output and its shards, nothing else."""
    for path in [output, *shard_paths(output)]:
        path.unlink(missing_ok=True)


def _fsync_folder(folder: Path) -> None:
    """Make a created or renamed entry durable (a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


__all__ = ["AnswerFile", "AnswerWriter", "merge_answers", "read_answered", "remove_answers", "shard_path"]
