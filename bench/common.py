# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""What the side-by-side benchmarks share: the original's side as a child process, a fixed background load, the
machine's description and the update of one section of docs/benchmarks.md."""

import json
import math
import os
import platform
import re
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch


REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VIDEOLLAMA2_SHARED", REPO_ROOT.parent / "shared"))
REPORT = REPO_ROOT / "docs" / "benchmarks.md"


def add_original_arguments(parser) -> None:
    parser.add_argument(
        "--original-python",
        default=os.environ.get("VIDEOLLAMA2_ORIGINAL_PYTHON"),
        help="interpreter of the original's environment (decord, transformers 4.40); env VIDEOLLAMA2_ORIGINAL_PYTHON",
    )
    parser.add_argument(
        "--original-repo",
        default=os.environ.get("VIDEOLLAMA2_ORIGINAL_REPO"),
        help="checkout of DAMO-NLP-SG/VideoLLaMA2; env VIDEOLLAMA2_ORIGINAL_REPO",
    )
    parser.add_argument("--write", action="store_true", help="update this benchmark's section of docs/benchmarks.md")


class OriginalSide:
    """bench/original_side.py running under the original's interpreter; `request` sends one operation."""

    def __init__(self, python: str | None, repo: str | None):
        if not python or not repo:
            sys.exit(
                "The side-by-side benchmarks run the original VideoLLaMA2: pass --original-python and --original-repo "
                "(or set VIDEOLLAMA2_ORIGINAL_PYTHON / VIDEOLLAMA2_ORIGINAL_REPO); docs/benchmarks.md says how to set "
                "them up."
            )
        script = Path(__file__).with_name("original_side.py")
        environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
        self.process = subprocess.Popen(
            [python, str(script), "--original-repo", repo, "--threads", str(torch.get_num_threads())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        self.versions = json.loads(self.process.stdout.readline())

    def request(self, operation: str, **arguments) -> dict:
        self.process.stdin.write(json.dumps({"op": operation, **arguments}) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        if "error" in answer:
            raise RuntimeError(f"the original's side failed on {operation}: {answer['error']}")
        return answer

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextmanager
def background_load(processes: int):
    """`processes` CPU-bound child processes (one busy loop each) while the block runs, then stopped."""
    children = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(processes)]
    try:
        yield
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait()


def timed_ms(function) -> float:
    """Milliseconds taken by `function()`."""
    start = time.perf_counter()
    function()
    return (time.perf_counter() - start) * 1000


def peak_rss_growth_mib(function) -> float:
    """Peak RSS while `function` runs, over the RSS before it (MiB); /proc/self/clear_refs resets the peak. It counts
    what the C allocator takes from the system, so it depends on what earlier calls left in its free lists."""
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
    before = _status_mib("VmRSS")
    function()
    return _status_mib("VmHWM") - before


def peak_rss_mib() -> float:
    """Peak RSS of this process since it started (MiB)."""
    return _status_mib("VmHWM")


def _status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def peak_tensor_mib(function) -> float:
    """Peak of the bytes held by tensors created while `function` runs (MiB), replayed from torch.profiler's memory
    events: the same on every run and independent of the allocator's caching."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        function()
    events = profiler.profiler.kineto_results.events()
    changes = sorted((event.start_ns(), event.nbytes()) for event in events if event.name() == "[memory]")
    held = peak = 0
    for _, change in changes:
        held += change
        peak = max(peak, held)
    return peak / 2**20


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine() -> str:
    return (
        f"{cpu_name()}, {usable_cpus()} CPUs, torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"Python {platform.python_version()}, Linux {platform.release()}"
    )


def geometric_mean(values) -> float:
    values = list(values)
    return math.exp(sum(math.log(value) for value in values) / len(values))


def write_section(section: str, body: str, output: Path = REPORT) -> None:
    """Replace the `section` ("## ...") of docs/benchmarks.md with `body`, keeping the other benchmarks' sections."""
    text = output.read_text() if output.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(section)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: body.rstrip("\n") + "\n\n", text, count=1).rstrip("\n") + "\n"
    else:
        text = text.rstrip("\n") + "\n\n" + body.rstrip("\n") + "\n"
    output.write_text(text)
