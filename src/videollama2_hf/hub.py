# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Downloads from the Hugging Face Hub for the converter and the release readers: only the files asked for, and a
one-line error at once when the Hub cannot be reached (huggingface_hub itself retries for ~25 s, then raises a
connection error from deep inside its HTTP stack). Reachability is asked of huggingface_hub's HTTP client, so it
follows the proxy settings downloads follow."""

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


__all__ = ["HubUnreachableError", "NotInCacheError", "download", "list_files", "looks_like_repo_id"]
