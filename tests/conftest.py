"""Shared test fixtures: where the parity fixtures and real media live.

They are read from `../shared` (or `$VIDEOLLAMA2_SHARED`) and never committed. Missing data skips the tests on a
developer machine but fails them in CI (`CI=true`), so CI can never pass without checking parity.
"""

import os
from pathlib import Path

import pytest


REPO_ROOT = Path(__file__).resolve().parents[1]


def _require_dir(path: Path, what: str) -> Path:
    if path.is_dir():
        return path
    message = f"{what} not found at {path}; set VIDEOLLAMA2_SHARED to the folder holding fixtures/ and media/."
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def pytest_terminal_summary(terminalreporter):
    """Say loudly how many tests did not run for lack of the shared data (a developer run without ../shared)."""
    skipped = [
        report for report in terminalreporter.stats.get("skipped", []) if "VIDEOLLAMA2_SHARED" in str(report.longrepr)
    ]
    if skipped:
        terminalreporter.write_sep(
            "!",
            f"{len(skipped)} tests SKIPPED: no shared test data (parity fixtures, media) at "
            f"{os.environ.get('VIDEOLLAMA2_SHARED', REPO_ROOT.parent / 'shared')}; set VIDEOLLAMA2_SHARED",
            red=True,
            bold=True,
        )


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _require_dir(Path(os.environ.get("VIDEOLLAMA2_SHARED", REPO_ROOT.parent / "shared")), "shared data")


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir) -> Path:
    return _require_dir(shared_dir / "fixtures", "parity fixtures")


@pytest.fixture(scope="session")
def media_dir(shared_dir) -> Path:
    return _require_dir(shared_dir / "media", "sample media")
