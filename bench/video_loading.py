# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Video loading side by side with the original VideoLLaMA2, on an idle machine and under a fixed background load.

For every sample video and 8 / 16 frames, path -> model-ready `pixel_values_videos` at 336x336 (CLIP ViT-L/14-336):
- ours: `VideoLlama2VideoProcessor(num_frames=N)(path)`;
- the original: its `mm_utils.process_video(path, CLIPImageProcessor, aspect_ratio=None)` (decord with 2 threads,
  transformers 4.40's CLIP image processor), run in the original's environment by bench/original_side.py;
- decode limit: our reader opening and indexing the file and decoding exactly the frames it must decode (same
  decoder, same threads), with no colour conversion and no resizing: what ours cannot go below without decoding less;
- transformers: `transformers.video_utils.load_video(path, num_frames=N, backend="pyav")` + the CLIP-336
  `LlavaNextVideoVideoProcessor` (torchvision resize, not the original's pixels).
Each pass runs all cases with the four sides alternating, median of `--repeats` after a warm-up; the loaded pass
repeats it with one busy-loop process per CPU started and stopped by this script. Ours is checked bit-exact against
the original's pixels on every case.

    python bench/video_loading.py --original-python <ORIGINAL_VENV>/bin/python \
        --original-repo <ORIGINAL_REPO> [--repeats 5] [--write]
"""

import argparse
import os
import statistics
import tempfile
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import transformers
from common import (
    SHARED,
    OriginalSide,
    add_original_arguments,
    background_load,
    geometric_mean,
    machine,
    timed_ms,
    usable_cpus,
    write_section,
)
from transformers import LlavaNextVideoVideoProcessor
from transformers.video_utils import load_video

from videollama2_hf.video_decoding_videollama2 import PyAVVideo
from videollama2_hf.video_processing_videollama2 import VideoLlama2VideoProcessor


SECTION = "## Video loading"
SIDES = ("ours", "original", "decode limit", "transformers")
# preprocessor_config.json of openai/clip-vit-large-patch14-336, the tower of the VideoLLaMA2 (Mistral) releases.
CLIP_336 = {
    "do_resize": True,
    "size": {"shortest_edge": 336},
    "resample": 3,
    "do_center_crop": True,
    "crop_size": {"height": 336, "width": 336},
    "do_normalize": True,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
}


def measure_pass(original: OriginalSide, videos: list[Path], repeats: int, image_processor: dict) -> list[dict]:
    clip_336 = {"size": {"shortest_edge": 336}, "crop_size": {"height": 336, "width": 336}}
    transformers_processor = LlavaNextVideoVideoProcessor(**clip_336)
    rows = []
    for path in videos:
        for num_frames in (8, 16):
            ours = VideoLlama2VideoProcessor(num_frames=num_frames)

            def run_ours(ours=ours, path=path):
                return ours(str(path), return_tensors="pt")["pixel_values_videos"][0]

            def run_decode_limit(ours=ours, path=path, num_frames=num_frames):
                sampler = partial(ours.sample_frames, num_frames=num_frames)
                video = PyAVVideo(str(path), path.name, sampler, ours.max_frames)
                for _ in video.decode(video.indices):
                    pass

            def run_transformers(path=path, num_frames=num_frames):
                frames, _ = load_video(str(path), num_frames=num_frames, backend="pyav")
                transformers_processor(frames, do_sample_frames=False, return_tensors="pt")

            request = dict(path=str(path), num_frames=num_frames, image_processor=image_processor)
            functions = {
                "ours": lambda: timed_ms(run_ours),
                "original": lambda request=request: original.request("video", **request)["ms"],
                "decode limit": lambda: timed_ms(run_decode_limit),
                "transformers": lambda: timed_ms(run_transformers),
            }
            with tempfile.TemporaryDirectory() as folder:  # warm-up, and the bit-exactness check
                saved = os.path.join(folder, "original.npy")
                original.request("video", **request, save=saved)
                exact = np.array_equal(run_ours().numpy(), np.load(saved))
            for function in functions.values():
                function()
            times = {side: [] for side in SIDES}
            for _ in range(repeats):
                for side, function in functions.items():
                    times[side].append(function())
            row = {"video": path.name, "frames": num_frames, "exact": exact}
            row.update({side: statistics.median(measured) for side, measured in times.items()})
            rows.append(row)
            print(
                f"{path.name} {num_frames}: "
                + ", ".join(f"{side} {row[side]:.1f}" for side in SIDES)
                + f" ms; ours/original {row['ours'] / row['original']:.2f}; identical pixels: {exact}",
                flush=True,
            )
    return rows


def table(title: str, rows: list[dict], load: str) -> list[str]:
    lines = [
        f"### {title}",
        "",
        load,
        "",
        "| video | frames | ours (ms) | original (ms) | ours / original | decode limit (ms) | ours / decode limit "
        "| transformers (ms) | identical pixels |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['video']} | {row['frames']} | {row['ours']:.1f} | {row['original']:.1f} "
            f"| {row['ours'] / row['original']:.2f}x | {row['decode limit']:.1f} "
            f"| {row['ours'] / row['decode limit']:.2f}x | {row['transformers']:.1f} "
            f"| {'yes' if row['exact'] else 'NO'} |"
        )
    ratios = [row["ours"] / row["original"] for row in rows]
    limits = [row["ours"] / row["decode limit"] for row in rows]
    totals = {side: sum(row[side] for row in rows) for side in SIDES}
    lines += [
        f"| **all** | | {totals['ours']:.1f} | {totals['original']:.1f} | {totals['ours'] / totals['original']:.2f}x "
        f"| {totals['decode limit']:.1f} | {totals['ours'] / totals['decode limit']:.2f}x "
        f"| {totals['transformers']:.1f} | |",
        "",
        f"ours / original: geometric mean {geometric_mean(ratios):.2f}x, worst case {max(ratios):.2f}x; "
        f"ours / decode limit: worst case {max(limits):.2f}x.",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_original_arguments(parser)
    parser.add_argument("--media", type=Path, default=SHARED / "media")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-load", action="store_true", help="skip the pass under background load")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    videos = sorted(args.media.glob("*.mp4"))
    original = OriginalSide(args.original_python, args.original_repo)
    passes = []
    try:
        load = f"1-minute load average {os.getloadavg()[0]:.1f} at the start (no load of this benchmark's own)."
        print("idle pass", flush=True)
        passes.append(("Idle machine", measure_pass(original, videos, args.repeats, CLIP_336), load))
        if not args.no_load:
            busy = usable_cpus()
            print(f"loaded pass: {busy} busy-loop processes", flush=True)
            with background_load(busy):
                rows = measure_pass(original, videos, args.repeats, CLIP_336)
            load = f"{busy} busy-loop processes (one per CPU) running for the whole pass, started by the benchmark."
            passes.append(("Under background load", rows, load))
    finally:
        original.close()
    lines = [
        SECTION,
        "",
        "Path -> model-ready `pixel_values_videos` (N, 3, 336, 336), side by side with the original in one run "
        "(`bench/video_loading.py`, commands below).",
        "**ours**: `VideoLlama2VideoProcessor(num_frames=N)(path)`. **original**: its `process_video` with decord "
        "(2 threads) and transformers "
        f"{original.versions['transformers']}'s `CLIPImageProcessor`, timed inside the original's environment. "
        "**decode limit**: our reader opening and indexing the file and decoding exactly the frames that must be "
        "decoded (same decoder and threads), no conversion, no resize. **transformers**: `load_video(path, "
        'num_frames=N, backend="pyav")` + `LlavaNextVideoVideoProcessor` at CLIP-336 settings (torchvision resize: '
        "not the original's pixels). Four sides alternate; median of "
        f"{args.repeats} runs after a warm-up, ms. Ratios are ours / other: below 1 is faster. "
        "**identical pixels**: ours equals the original's output bit for bit.",
        "",
        f"Machine: {machine()}; transformers {transformers.__version__}.",
        "",
    ]
    for title, rows, load in passes:
        lines += table(title, rows, load)
    body = "\n".join(lines)
    print(body)
    if args.write:
        write_section(SECTION, body)
        print("wrote docs/benchmarks.md")


if __name__ == "__main__":
    main()
