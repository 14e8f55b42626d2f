# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Video loading benchmark: VideoLlama2VideoProcessor vs transformers' own PyAV loader + video processor.

For every sample video, times decode + preprocess of 8 and 16 frames at 336 px:
- ours: `VideoLlama2VideoProcessor(num_frames=N)(path)` (PyAV with seeking / frame skipping, PIL-exact pixels);
- transformers: `transformers.video_utils.load_video(path, num_frames=N, backend="pyav")` followed by
  `LlavaNextVideoVideoProcessor` (CLIP-336 settings, torchvision resizing) on the decoded frames.
Runs of the two alternate so that both see the same machine load; each number is the median of `--repeats` runs
after one warm-up. Writes the "## Video loading" section of docs/benchmarks.md (other sections are kept).

    python bench/video_loading.py [--repeats 5] [--media DIR] [--output docs/benchmarks.md]
"""

import argparse
import os
import platform
import re
import statistics
import time
import warnings
from pathlib import Path

import torch
import transformers
from transformers import LlavaNextVideoVideoProcessor
from transformers.video_utils import load_video

from videollama2_hf.video_processing_videollama2 import VideoLlama2VideoProcessor


REPO_ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Video loading"


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), no GPU"


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return (time.perf_counter() - start) * 1000


def run(media: Path, repeats: int) -> list[tuple[str, int, float, float]]:
    baseline_processor = LlavaNextVideoVideoProcessor(
        size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336}
    )
    rows = []
    for path in sorted(media.glob("*.mp4")):
        for num_frames in (8, 16):
            ours = VideoLlama2VideoProcessor(num_frames=num_frames)

            def run_ours(path=path, ours=ours):
                ours(str(path), return_tensors="pt")

            def run_baseline(path=path, num_frames=num_frames):
                frames, _ = load_video(str(path), num_frames=num_frames, backend="pyav")
                baseline_processor(frames, do_sample_frames=False, return_tensors="pt")

            run_ours(), run_baseline()  # warm-up
            ours_ms, baseline_ms = [], []
            for _ in range(repeats):
                ours_ms.append(timed(run_ours))
                baseline_ms.append(timed(run_baseline))
            ours_median, baseline_median = statistics.median(ours_ms), statistics.median(baseline_ms)
            rows.append((path.name, num_frames, ours_median, baseline_median))
            print(f"{path.name} {num_frames} frames: ours {ours_median:.1f} ms, transformers {baseline_median:.1f} ms")
    return rows


def section(rows, repeats: int, load: tuple[float, float]) -> str:
    lines = [
        SECTION,
        "",
        "Decode + preprocess one video to `pixel_values_videos` (N, 3, 336, 336), `bench/video_loading.py`.",
        "**ours**: `VideoLlama2VideoProcessor(num_frames=N)(path)` — PyAV, packet index + seek to each wanted frame's",
        "key frame, non-reference frames skipped, PIL bicubic resize (bit-exact with the original) on worker threads.",
        '**transformers**: `load_video(path, num_frames=N, backend="pyav")` + `LlavaNextVideoVideoProcessor`',
        f"(CLIP-336 settings, torchvision resize). Median of {repeats} alternating runs after a warm-up, ms.",
        "",
        f"Machine: {machine()}; transformers {transformers.__version__}.",
        f"1-minute load average {load[0]:.1f} before and {load[1]:.1f} after the run: other jobs may share the cores;",
        "the two sides alternate so that both see the same load.",
        "",
        "| video | frames | ours (ms) | transformers (ms) | speed-up |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, num_frames, ours_ms, baseline_ms in rows:
        lines.append(f"| {name} | {num_frames} | {ours_ms:.1f} | {baseline_ms:.1f} | {baseline_ms / ours_ms:.2f}x |")
    total_ours = sum(row[2] for row in rows)
    total_baseline = sum(row[3] for row in rows)
    lines.append(f"| **all** | | {total_ours:.1f} | {total_baseline:.1f} | {total_baseline / total_ours:.2f}x |")
    return "\n".join(lines) + "\n"


def write_section(output: Path, text: str) -> None:
    """Replace the "## Video loading" section of `output` (or append it), keeping every other section."""
    document = output.read_text() if output.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(document):
        document = pattern.sub(lambda _: text + "\n", document, count=1).rstrip("\n") + "\n"
    else:
        document = document.rstrip("\n") + "\n\n" + text
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(document)


def main() -> None:
    shared = Path(os.environ.get("VIDEOLLAMA2_SHARED", REPO_ROOT.parent / "shared"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--media", type=Path, default=shared / "media")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "docs" / "benchmarks.md")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    load_before = os.getloadavg()[0]
    rows = run(args.media, args.repeats)
    write_section(args.output, section(rows, args.repeats, (load_before, os.getloadavg()[0])))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
