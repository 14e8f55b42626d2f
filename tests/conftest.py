"""Shared test fixtures: where the parity fixtures, real media and transformers' own test mixins live.

They are read from `../shared` (or `$VIDEOLLAMA2_SHARED`) and never committed. Missing data skips the tests on a
developer machine but fails them in CI (`CI=true`), so CI can never pass without checking parity.

`hf-tests/` holds transformers' common test mixins, unmodified, per transformers release: a temporary folder with
the set of the installed release (`transformers_mixins.prepare_mixins`) goes first on `sys.path`, so that the
`test_*_common.py` testers import them as transformers' own testers do (`from tests.test_modeling_common import ...`:
this folder has no `__init__.py`, so the regular package `tests` there is the one imported).
"""

import os
import shutil
import sys
from pathlib import Path

import pytest
from transformers_mixins import MixinsUnavailable, prepare_mixins, restore_removed_defaults


REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("VIDEOLLAMA2_SHARED", REPO_ROOT.parent / "shared"))
HF_TESTS_DIR = SHARED_DIR / "hf-tests"
IN_CI = os.environ.get("CI", "").lower() == "true"

if not HF_TESTS_DIR.is_dir():
    # Without the mixins the common testers cannot even be imported: skip them here, fail the run in CI.
    collect_ignore_glob = ["test_*_common.py"]


def pytest_configure(config):
    if not HF_TESTS_DIR.is_dir():
        if IN_CI:
            raise pytest.UsageError(
                f"transformers' test mixins not found at {HF_TESTS_DIR}; set VIDEOLLAMA2_SHARED to the folder holding "
                "hf-tests/, fixtures/ and media/."
            )
        return
    try:
        mixins = prepare_mixins(HF_TESTS_DIR)
    except MixinsUnavailable as error:
        raise pytest.UsageError(str(error)) from None
    config.add_cleanup(lambda: shutil.rmtree(mixins, ignore_errors=True))
    sys.path.insert(0, str(mixins))
    restore_removed_defaults()


def pytest_report_header(config):
    from importlib.metadata import version

    versions = ", ".join(f"{name} {version(name)}" for name in ("torch", "transformers", "av", "numpy"))
    if not HF_TESTS_DIR.is_dir():
        return [
            versions,
            f"transformers' test mixins not found at {HF_TESTS_DIR}: the test_*_common.py testers are skipped",
        ]
    return versions


def _require_dir(path: Path, what: str) -> Path:
    if path.is_dir():
        return path
    message = f"{what} not found at {path}; set VIDEOLLAMA2_SHARED to the folder holding fixtures/ and media/."
    if IN_CI:
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
    return _require_dir(SHARED_DIR, "shared data")


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir) -> Path:
    return _require_dir(shared_dir / "fixtures", "parity fixtures")


@pytest.fixture(scope="session")
def media_dir(shared_dir) -> Path:
    return _require_dir(shared_dir / "media", "sample media")
