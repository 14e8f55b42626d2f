"""Prefill and per-token decode latency of a small VideoLLaMA2 on CPU, eager vs sdpa attention, in one run.

Writes the "## Model latency" section of docs/benchmarks.md. Run: `python bench/model_latency.py`.
"""

import copy
import platform
import re
import statistics
import time
from pathlib import Path

import torch

from videollama2_hf import VideoLlama2Config, VideoLlama2ForConditionalGeneration


REPORT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
SECTION = "## Model latency"
NEW_TOKENS = 32
REPEATS = 5


def small_config() -> VideoLlama2Config:
    """CLIP-like tower at 224 px (16x16 grid), full STC connector, a 4-layer Mistral with the real vocabulary."""
    return VideoLlama2Config(
        vision_config={
            "model_type": "clip_vision_model",
            "hidden_size": 256,
            "intermediate_size": 1024,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "image_size": 224,
            "patch_size": 14,
        },
        text_config={
            "model_type": "mistral",
            "hidden_size": 512,
            "intermediate_size": 1536,
            "num_hidden_layers": 4,
            "num_attention_heads": 8,
            "num_key_value_heads": 4,
            "vocab_size": 32000,
        },
        num_frames=8,
    )


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def measure(model, inputs) -> tuple[float, float]:
    """Median prefill ms and median ms per decoded token (generation minus prefill, over NEW_TOKENS)."""
    prefill, decode = [], []
    with torch.inference_mode():
        model(**inputs, logits_to_keep=1)  # warm-up
        for _ in range(REPEATS):
            start = time.perf_counter()
            model(**inputs, logits_to_keep=1)
            prefill_s = time.perf_counter() - start
            start = time.perf_counter()
            model.generate(**inputs, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
            total_s = time.perf_counter() - start
            prefill.append(prefill_s * 1000)
            decode.append((total_s - prefill_s) * 1000 / (NEW_TOKENS - 1))
    return statistics.median(prefill), statistics.median(decode)


def main():
    torch.manual_seed(0)
    config = small_config()
    visual_tokens = config.get_num_visual_tokens()
    prompt = [1] + list(range(100, 164)) + [config.video_token_id] * visual_tokens + list(range(200, 216))
    inputs = {
        "input_ids": torch.tensor([prompt]),
        "attention_mask": torch.ones(1, len(prompt), dtype=torch.long),
        "pixel_values_videos": torch.randn(1, config.num_frames, 3, 224, 224),
    }
    reference = VideoLlama2ForConditionalGeneration._from_config(copy.deepcopy(config), attn_implementation="eager")
    rows = {}
    for attention in ("eager", "sdpa"):
        model = VideoLlama2ForConditionalGeneration._from_config(copy.deepcopy(config), attn_implementation=attention)
        model.load_state_dict(reference.state_dict())
        rows[attention] = measure(model.eval(), inputs)
        print(attention, rows[attention])

    eager, sdpa = rows["eager"], rows["sdpa"]
    body = "\n".join(
        [
            SECTION,
            "",
            f"Machine: {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}, fp32. "
            f"Small config: CLIP-like tower 224 px / 4 layers / width 256, STC connector, 4-layer Mistral width 512 "
            f"with the 32000-token vocabulary; 8 frames -> {visual_tokens} visual tokens, prompt {len(prompt)} "
            f"tokens, {NEW_TOKENS} new tokens, median of {REPEATS}. Command: `python bench/model_latency.py`.",
            "",
            "| attention | prefill (ms) | decode (ms / token) |",
            "|---|---:|---:|",
            f"| eager | {eager[0]:.1f} | {eager[1]:.2f} |",
            f"| sdpa | {sdpa[0]:.1f} | {sdpa[1]:.2f} |",
            f"| eager / sdpa | {eager[0] / sdpa[0]:.2f}x | {eager[1] / sdpa[1]:.2f}x |",
            "",
        ]
    )
    write_section(body)


def write_section(body: str) -> None:
    """Replace this benchmark's section of docs/benchmarks.md, keeping the other benchmarks' sections."""
    REPORT.parent.mkdir(exist_ok=True)
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(body + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + body + "\n"
    REPORT.write_text(text)


if __name__ == "__main__":
    main()
