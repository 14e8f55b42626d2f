"""transformers' own test mixins for the transformers release that is installed.

Every release changes its top-level mixin files (`test_modeling_common.py`, ...) and what they import from its
`transformers.testing_utils`, so they must come from the installed release. `../shared/hf-tests` holds them per
release in `versions/<version>/`, beside the release-independent parts (`tests/__init__.py`, `tests/generation/`,
`tests/utils/`, `tests/models/`, `utils/`). For a release not listed there, the files come from that release's sdist
(`pip download`), unpacked once into a cache outside the repository (`$VIDEOLLAMA2_HF_CACHE`, default
`~/.cache/videollama2-hf`).

`prepare_mixins` assembles both into a temporary folder (the shared folder is only read), which the conftest puts
first on `sys.path`, so that the testers import `tests.test_modeling_common` as transformers' own testers do.
"""

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path


CACHE_DIR = Path(os.environ.get("VIDEOLLAMA2_HF_CACHE", Path.home() / ".cache" / "videollama2-hf"))


class MixinsUnavailable(RuntimeError):
    """Neither the shared folder nor the release's sdist gives the mixins of the installed transformers."""


def installed_transformers_version() -> str:
    return version("transformers")


def sdist_archive(release: str) -> Path:
    """The transformers `release` sdist (`pip download`), downloaded once into the cache."""
    target = CACHE_DIR / "transformers-sdist" / f"transformers-{release}.tar.gz"
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(prefix="transformers-sdist-") as download_dir:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        command += ["--dest", download_dir, f"transformers=={release}"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600)
        archives = sorted(Path(download_dir).glob("transformers-*.tar.gz"))
        if result.returncode != 0 or not archives:
            reason = (result.stderr.strip().splitlines() or ["no sdist downloaded"])[-1]
            raise MixinsUnavailable(
                f"transformers {release}'s sdist is not downloadable ({reason}); give this machine access to PyPI, "
                f"or put the archive at {target}."
            )
        staging = _make_dirs(target.parent) / f".{archives[0].name}.{os.getpid()}"
        shutil.copyfile(archives[0], staging)
        os.replace(staging, target)  # atomic: a concurrent run sees the whole archive or none
    return target


def _sdist_mixins(release: str) -> Path:
    """`tests/*.py` of the transformers `release` sdist, unpacked once into the cache."""
    target = CACHE_DIR / "transformers-tests" / release
    if (target / "test_modeling_common.py").is_file():
        return target
    try:
        archive = sdist_archive(release)
    except MixinsUnavailable as error:
        raise MixinsUnavailable(
            f"transformers {release}'s test mixins are not in the shared hf-tests/versions/ and {error}"
        ) from None
    staging = Path(tempfile.mkdtemp(prefix=f".{release}.", dir=_make_dirs(target.parent)))
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if len(parts) == 3 and parts[1] == "tests" and parts[2].endswith(".py") and member.isfile():
                (staging / parts[2]).write_bytes(tar.extractfile(member).read())
    if not (staging / "test_modeling_common.py").is_file():
        shutil.rmtree(staging, ignore_errors=True)
        raise MixinsUnavailable(f"The transformers {release} sdist holds no tests/test_modeling_common.py.")
    try:
        os.rename(staging, target)  # atomic: a concurrent run that won the race leaves its own copy in place
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _make_dirs(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def mixin_source(hf_tests_dir: Path, release: str) -> Path:
    """The folder holding the top-level mixin files of `release`."""
    listed = hf_tests_dir / "versions" / release
    return listed if (listed / "test_modeling_common.py").is_file() else _sdist_mixins(release)


def prepare_mixins(hf_tests_dir: Path, release: str | None = None) -> Path:
    """A temporary copy of `hf_tests_dir` with the mixins of `release` (the installed transformers by default) in its
    `tests/`; returns the folder to put first on `sys.path`. The caller removes it.

    `src/transformers` links to the installed package, which `test_pipeline_mixin` reads as the source tree.
    """
    release = release or installed_transformers_version()
    source = mixin_source(hf_tests_dir, release)
    root = Path(tempfile.mkdtemp(prefix=f"hf-tests-{release}-"))
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(hf_tests_dir / "tests", root / "tests", ignore=ignore)
    if (hf_tests_dir / "utils").is_dir():
        shutil.copytree(hf_tests_dir / "utils", root / "utils", ignore=ignore)
    for mixin in source.glob("*.py"):
        shutil.copyfile(mixin, root / "tests" / mixin.name)
    import transformers

    (root / "src").mkdir()
    (root / "src" / "transformers").symlink_to(Path(transformers.__file__).parent, target_is_directory=True)
    return root


def restore_removed_defaults() -> None:
    """Defaults that the offline generation mixins (transformers v5.15's `tests/generation/`) still read from
    `PreTrainedModel` but newer releases dropped: `_is_stateful` (False for attention models) went in 5.25. Set for
    the test session only, where missing."""
    from transformers import PreTrainedModel

    if not hasattr(PreTrainedModel, "_is_stateful"):
        PreTrainedModel._is_stateful = False
