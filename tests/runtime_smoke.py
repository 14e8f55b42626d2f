"""The runtime paths with the runtime dependencies only (no pytest, no [test] extra): run by .ci/run in a fresh
virtual environment where the package was installed with `pip install .`, so that a dependency missing from
`install_requires` fails here instead of on a user's machine.

Covers the command line (`--version`, `--help`, `convert` with and without `--verify`, `info`, `ask` on a video, an
image and a release in the original layout, `batch` on a folder, `serve` without its extra, `python -m
videollama2_hf`) and every ```python example of the README and the docs. Exits non-zero on the first failure;
prints one line per check and a closing `N passed, 0 failed`.

    python tests/runtime_smoke.py   # reads ../shared (or $VIDEOLLAMA2_SHARED)
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from readme_examples import (
    AUDIO_VISUAL_NAME,
    DOCUMENTS,
    RELEASE_NAME,
    REPO_ROOT,
    make_scratch,
    python_blocks,
    run_example,
)


def shared_dir() -> Path:
    path = Path(os.environ.get("VIDEOLLAMA2_SHARED", REPO_ROOT.parent / "shared"))
    if not (path / "fixtures").is_dir() or not (path / "media").is_dir():
        sys.exit(f"runtime smoke: the shared test data is missing at {path}; set VIDEOLLAMA2_SHARED.")
    return path


def command(*argv: str, cwd: Path) -> str:
    """Run the installed `videollama2-hf` (from this interpreter's environment) and return its stdout."""
    executable = Path(sys.executable).parent / "videollama2-hf"
    result = subprocess.run([str(executable), *argv], cwd=cwd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"videollama2-hf {' '.join(argv)} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return result.stdout


def batch(root: Path) -> None:
    """`batch` over a folder holding a video and an image: one answer line each (DataLoader workers, accelerate)."""
    import json
    import shutil

    folder = root / "batch-input"
    folder.mkdir()
    for name in ("sample_demo_1.mp4", "extreme_ironing.jpg"):
        shutil.copy(root / name, folder / name)
    argv = ("--model", "converted", "--input", "batch-input", "--output", "answers.jsonl", "--question", "Why?")
    command("batch", *argv, "--max-new-tokens", "4", "--batch-size", "2", "--device", "cpu", "-q", cwd=root)
    lines = [json.loads(line) for line in (root / "answers.jsonl").read_text().splitlines()]
    if len(lines) != 2 or any("error" in line or not line.get("answer") for line in lines):
        raise RuntimeError(f"batch wrote {lines}")


def serve_without_extra(root: Path) -> None:
    """Without the server's packages (not runtime dependencies), `serve` says in one line how to get them. With them
    installed (the floor pass installs the [test] extra) it would start serving: tests/test_serving.py covers that."""
    import importlib.util

    if importlib.util.find_spec("fastapi") is not None:
        print("    (the [serve] extra is installed here: not checked)", flush=True)
        return
    executable = Path(sys.executable).parent / "videollama2-hf"
    command = [str(executable), "serve", "converted"]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    message = result.stderr.strip()
    if result.returncode == 0 or "videollama2-hf[serve]" not in message or len(message.splitlines()) != 1:
        raise RuntimeError(f"serve without its extra exited {result.returncode}: {message[-2000:]}")


def main() -> int:
    shared = shared_dir()
    passed = 0

    def check(name: str, function, *args, **kwargs) -> None:
        nonlocal passed
        function(*args, **kwargs)
        passed += 1
        print(f"ok  {name}", flush=True)

    with tempfile.TemporaryDirectory(prefix="videollama2-smoke-") as scratch:
        root = make_scratch(shared / "fixtures", shared / "media", Path(scratch))
        variant = shared / "fixtures" / "qwen2_siglip_stcv35_f16"
        release = f"releases/{RELEASE_NAME}"
        check("--version", command, "--version", cwd=root)
        check("--help", command, "--help", cwd=root)
        check("convert --list-presets", command, "convert", "--list-presets", cwd=root)
        tower = str(variant / "vision_tower")
        converted = ("converted", "--vision-tower", tower, "--verify", "-q")
        check("convert --verify", command, "convert", str(variant / "original_checkpoint"), *converted, cwd=root)
        check("info (converted)", command, "info", "converted", cwd=root)
        check("info (release)", command, "info", release, cwd=root)
        ask = ("ask", "--device", "cpu", "--max-new-tokens", "4", "-q")
        check("ask --video", command, *ask, "--model", "converted", "--video", "sample_demo_1.mp4", "Why?", cwd=root)
        check("ask --image", command, *ask, "--model", "converted", "--image", "extreme_ironing.jpg", "Why?", cwd=root)
        hear = (*ask, "--model", AUDIO_VISUAL_NAME)
        check("ask --audio", command, *hear, "--audio", "bird-twitter-car.wav", "What is it?", cwd=root)
        video = ("--video", "sample_demo_1.mp4", "--with-audio")
        check("ask --video --with-audio", command, *hear, *video, "What is it?", cwd=root)
        check("ask (release layout)", command, *ask, "--model", release, "--image", "desert.png", "Why?", cwd=root)
        check("batch (a folder of media)", batch, root)
        check("serve without the [serve] extra", serve_without_extra, root)
        module = [sys.executable, "-m", "videollama2_hf", "--version"]
        check("python -m videollama2_hf", subprocess.run, module, check=True, capture_output=True, timeout=300)
        os.chdir(root)
        for document in DOCUMENTS:
            for line, code, skipped in python_blocks(document):
                if not skipped:
                    check(f"{document}:{line}", run_example, document, line, code, root)
        os.chdir(REPO_ROOT)
    print(f"runtime smoke: {passed} passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
