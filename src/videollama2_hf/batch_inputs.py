# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""The items of `videollama2-hf batch`: a folder of media files, or a JSONL/CSV manifest of `{id, video|image|audio,
question}` rows. Read and checked in full before any model loads (torch-free), so that a typo in row 900 000 costs
seconds, not a model load and a night of answers."""

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .inference import IMAGE_EXTENSIONS


VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".flv", ".wmv", ".mpeg", ".mpg", ".ts", ".gif")
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".m4a", ".aac", ".opus")
MEDIA_KINDS = ("video", "image", "audio")
MANIFEST_SUFFIXES = (".jsonl", ".csv")


@dataclass(frozen=True)
class BatchItem:
    """One question about one medium. `id` is written back as given (a string or an integer); `key` is the text
    the resumption compares."""

    id: str | int
    kind: str
    source: str
    question: str

    @property
    def key(self) -> str:
        return str(self.id)


def media_kind(path: str) -> str | None:
    """video, image or audio by the file extension; None for anything else."""
    suffix = os.path.splitext(str(path))[1].lower()
    for kind, extensions in (("video", VIDEO_EXTENSIONS), ("image", IMAGE_EXTENSIONS), ("audio", AUDIO_EXTENSIONS)):
        if suffix in extensions:
            return kind
    return None


def read_items(source, question: str | None = None) -> list[BatchItem]:
    """The items of a media folder (every video, image and audio file below it, sorted, id = the path relative to
    the folder) or of a JSONL/CSV manifest (relative media paths are relative to the manifest's folder). A row's
    own `question` wins over `question`."""
    path = Path(source).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"No such input: {path}")
    if path.is_dir():
        items = _folder_items(path, question)
        if not items:
            raise ValueError(
                f"{path} holds no video, image or audio files (by extension: "
                f"{', '.join(VIDEO_EXTENSIONS + IMAGE_EXTENSIONS + AUDIO_EXTENSIONS)})."
            )
    elif path.suffix.lower() in MANIFEST_SUFFIXES:
        rows = _jsonl_rows(path) if path.suffix.lower() == ".jsonl" else _csv_rows(path)
        items = [_manifest_item(row, where, path.parent, question) for where, row in rows]
        if not items:
            raise ValueError(f"{path} holds no rows.")
    else:
        raise ValueError(f"--input takes a folder of media or a .jsonl/.csv manifest, got {path}.")
    _check_unique_ids(items, path)
    return items


def _folder_items(folder: Path, question: str | None) -> list[BatchItem]:
    found = []
    for root, directories, files in os.walk(folder):
        directories[:] = sorted(name for name in directories if not name.startswith("."))
        for name in sorted(files):
            kind = media_kind(name)
            if kind is not None and not name.startswith("."):
                found.append((Path(root, name), kind))
    if found and question is None:
        raise ValueError(f"{folder} is a folder of media: give the question to ask about each with --question.")
    return [BatchItem(path.relative_to(folder).as_posix(), kind, str(path), question) for path, kind in found]


def _jsonl_rows(path: Path):
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as error:
                raise ValueError(f"{path}:{number} is not a JSON line ({error}).") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number} is not a JSON object with id, video|image|audio and question.")
            yield f"{path}:{number}", row


def _csv_rows(path: Path):
    with open(path, encoding="utf-8", newline="") as table:
        reader = csv.DictReader(table)
        columns = set(reader.fieldnames or ())
        if not columns & set(MEDIA_KINDS):
            raise ValueError(f"{path} needs a header row with a video, image or audio column (and id, question).")
        for row in reader:
            # empty cells mean "not given", as a missing JSON key does
            yield f"{path}:{reader.line_num}", {key: value for key, value in row.items() if value not in ("", None)}


def _manifest_item(row: dict, where: str, base: Path, question: str | None) -> BatchItem:
    given = [kind for kind in MEDIA_KINDS if row.get(kind) not in (None, "")]
    if len(given) != 1:
        found = ", ".join(given) or "none"
        raise ValueError(f"{where}: a row needs exactly one of video, image and audio (found: {found}).")
    kind = given[0]
    media = row[kind]
    if not isinstance(media, str):
        raise ValueError(f"{where}: {kind} must be a path or URL, got {media!r}.")
    if not media.startswith(("http://", "https://")) and not os.path.isabs(os.path.expanduser(media)):
        media = str(base / media)
    item_question = row.get("question", question)
    if not isinstance(item_question, str) or not item_question.strip():
        raise ValueError(f"{where}: no question; add a question to the row or give --question.")
    item_id = row.get("id", row[kind])
    if isinstance(item_id, bool) or not isinstance(item_id, (str, int)):
        raise ValueError(f"{where}: id must be a string or an integer, got {item_id!r}.")
    return BatchItem(item_id, kind, os.path.expanduser(media), item_question)


def _check_unique_ids(items: list[BatchItem], path: Path) -> None:
    seen = set()
    for item in items:
        if item.key in seen:
            raise ValueError(f"{path}: the id {item.id!r} appears twice; every row needs its own id.")
        seen.add(item.key)


__all__ = ["AUDIO_EXTENSIONS", "VIDEO_EXTENSIONS", "BatchItem", "media_kind", "read_items"]
