# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Video loading benchmark: VideoLlama2VideoProcessor vs transformers' own PyAV loader + video processor.

For every sample video, times decode + preprocess of 8 and 16 frames at 336 px:
- ours: `VideoLlama2VideoProcessor(num_frames=N)(path)` (PyAV with seeking / frame skipping, PIL-exact pixels);
- transformers: `transformers.video_utils.load_video(path, num_frames=N, backend="pyav")` followed by
  `LlavaNextVideoVideoProcessor` (CLIP-336 settings, torchvision resizing) on the decoded frames;
- transformers with exact pixels: the same `load_video` followed by `CLIPImageProcessorPil` (what stock transformers
  needs to reproduce the original's pixels).
Runs alternate so that all see the same machine load; each number is the median of `--repeats` runs after one
warm-up. Writes the "## Video loading" section of docs/benchmarks.md (other sections are kept).

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
from transformers import CLIPImageProcessorPil, LlavaNextVideoVideoProcessor
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


def run(media: Path, repeats: int) -> list[tuple[str, int, float, float, float]]:
    clip_336 = {"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}}
    baseline_processor = LlavaNextVideoVideoProcessor(**clip_336)
    exact_processor = CLIPImageProcessorPil(**clip_336)
    rows = []
    for path in sorted(media.glob("*.mp4")):
        for num_frames in (8, 16):
            ours = VideoLlama2VideoProcessor(num_frames=num_frames)

            def run_ours(path=path, ours=ours):
                ours(str(path), return_tensors="pt")

            def run_baseline(path=path, num_frames=num_frames):
                frames, _ = load_video(str(path), num_frames=num_frames, backend="pyav")
                baseline_processor(frames, do_sample_frames=False, return_tensors="pt")

            def run_exact(path=path, num_frames=num_frames):
                frames, _ = load_video(str(path), num_frames=num_frames, backend="pyav")
                exact_processor(list(frames), return_tensors="pt")

            functions = (run_ours, run_baseline, run_exact)
            for function in functions:  # warm-up
                function()
            times = [[], [], []]
            for _ in range(repeats):
                for function, measured in zip(functions, times):
                    measured.append(timed(function))
            ours_ms, baseline_ms, exact_ms = (statistics.median(measured) for measured in times)
            rows.append((path.name, num_frames, ours_ms, baseline_ms, exact_ms))
            print(f"{path.name} {num_frames}: ours {ours_ms:.1f}, transformers {baseline_ms:.1f} / {exact_ms:.1f} ms")
    return rows


def section(rows, repeats: int, load: tuple[float, float]) -> str:
    lines = [
        SECTION,
        "",
        "Decode + preprocess one video to `pixel_values_videos` (N, 3, 336, 336), `bench/video_loading.py`.",
        "**ours**: `VideoLlama2VideoProcessor(num_frames=N)(path)` — PyAV, packet index + seek to each wanted frame's",
        "key frame, non-reference frames skipped, PIL bicubic resize (bit-exact with the original) on worker threads",
        "while the next frame decodes.",
        '**transformers**: `load_video(path, num_frames=N, backend="pyav")` + `LlavaNextVideoVideoProcessor`',
        "(CLIP-336 settings, torchvision resize: its pixels differ from the original's).",
        "**transformers, PIL pixels**: the same `load_video` + `CLIPImageProcessorPil`, which stock transformers",
        "needs to get the original's pixels.",
        f"Median of {repeats} alternating runs after a warm-up, ms.",
        "",
        f"Machine: {machine()}; transformers {transformers.__version__}.",
        f"1-minute load average {load[0]:.1f} before and {load[1]:.1f} after the run: other jobs may share the cores;",
        "the runs alternate so that all see the same load.",
        "",
        "| video | frames | ours (ms) | transformers (ms) | speed-up | transformers, PIL pixels (ms) | speed-up |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, num_frames, ours_ms, baseline_ms, exact_ms in rows:
        lines.append(
            f"| {name} | {num_frames} | {ours_ms:.1f} | {baseline_ms:.1f} | {baseline_ms / ours_ms:.2f}x "
            f"| {exact_ms:.1f} | {exact_ms / ours_ms:.2f}x |"
        )
    ours_ms, baseline_ms, exact_ms = (sum(row[column] for row in rows) for column in (2, 3, 4))
    lines.append(
        f"| **all** | | {ours_ms:.1f} | {baseline_ms:.1f} | {baseline_ms / ours_ms:.2f}x "
        f"| {exact_ms:.1f} | {exact_ms / ours_ms:.2f}x |"
    )
    lines += [
        "",
        "Why the short clips gain little: a sampled frame needs every reference frame since the previous key frame,",
        "and all these clips but 00003491.mp4 have one or two key frames, so both sides decode the reference chain up",
        "to the last sampled frame. Ours skips only the (cheap) non-reference frames and hides part of the resizing",
        "behind decoding; bit-exact pixels need PIL's bicubic resize (~3.5 ms a frame here), and this VM's two vCPUs",
        "barely overlap decoding and resizing (run as two processes, decoding slows ~1.6x while resizing runs).",
        "00003491.mp4 has a key frame every 250 frames: ours decodes 585 frames for its 8 samples, where decoding",
        "from the start to the last sample (frame 3374) decodes 3375.",
    ]
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
