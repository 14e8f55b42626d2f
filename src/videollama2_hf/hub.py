# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Downloads from the Hugging Face Hub for the converter and the release readers: only the files asked for, and a
one-line error at once when the Hub cannot be reached (huggingface_hub itself retries for ~25 s, then raises a
connection error from deep inside its HTTP stack). Reachability is asked of huggingface_hub's HTTP client, so it
follows the proxy settings downloads follow."""

import os
import re
from functools import cache
from pathlib import Path


class HubUnreachableError(OSError):
    """The Hub cannot be reached (no network, a proxy); the message says what to do instead."""


class NotInCacheError(HubUnreachableError):
    """Downloads are off (HF_HUB_OFFLINE, `local_files_only`) and the local Hub cache does not hold the files."""


def looks_like_repo_id(source: str) -> bool:
    """`org/name`, as opposed to a local path."""
    return re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", source) is not None and ".." not in source


@cache
def _probe(endpoint: str) -> str | None:
    """Why `endpoint` cannot be reached (one HEAD request, 5 s at most), or None when it answers, whatever it answers.

    The request goes through huggingface_hub's own HTTP client, so it takes the route downloads take: its proxy
    settings (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`) and any client factory set with `set_client_factory`."""
    from huggingface_hub.utils import get_session

    try:
        get_session().head(endpoint, timeout=5)
    except Exception as error:  # any failure to get an answer: connection, proxy, TLS, timeout
        return str(error) or type(error).__name__
    return None


def _check_reachable(repo_id: str) -> None:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return  # downloads then come from the local cache only, and say so themselves
    reason = _probe(constants.ENDPOINT)
    if reason is not None:
        raise HubUnreachableError(
            f"Cannot reach the Hub at {constants.ENDPOINT} to get {repo_id} ({reason}). Check the connection, or "
            "download the repository beforehand (`hf download REPO --local-dir DIR`) and pass its folder."
        )


def list_files(repo_id: str, revision: str | None = None, token=None) -> list[str]:
    """The files of a Hub model repository."""
    import huggingface_hub

    _check_reachable(repo_id)
    return huggingface_hub.HfApi(token=token).list_repo_files(repo_id, revision=revision)


def download(repo_id: str, patterns: list[str], revision: str | None = None, token=None, **options) -> Path:
    """A local folder holding the files of `repo_id` that match `patterns` (from the cache when they are there)."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    if not options.get("local_files_only"):
        _check_reachable(repo_id)
    try:
        folder = huggingface_hub.snapshot_download(
            repo_id, revision=revision, allow_patterns=patterns, token=token, **options
        )
    except LocalEntryNotFoundError as error:
        raise NotInCacheError(
            f"{repo_id} is not in the local Hub cache and downloads are off (HF_HUB_OFFLINE or local_files_only): "
            f"{error}. Download it while online or pass a local folder."
        ) from None
    return Path(folder)


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


__all__ = [
    "HubUnreachableError",
    "NotInCacheError",
    "download",
    "list_files",
    "looks_like_repo_id",
    "push_folder_to_hub",
]
