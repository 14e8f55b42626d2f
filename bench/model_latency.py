# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Model latency side by side with the original VideoLLaMA2 on the same random weights, CPU, fp32.

The original's side (bench/original_side.py, in the original's environment) builds a random Mistral-based VideoLLaMA2
with an STC connector and saves it in the original layout; ours loads those very tensors, renamed by the converter's
`convert_original_key`, strictly into `VideoLlama2ForConditionalGeneration`. Then, alternating
sides, median of `--repeats`:
- prefill (one forward over the video prompt) and prefill + 32-token greedy `generate`, ids compared;
- the prefill split into vision tower, connector and language model;
- peak memory of a 16-frame video forward and generate: tensor bytes (torch.profiler) and RSS growth;
- ours only: greedy decoding tokens/s with a dynamic cache, a static cache, and a static cache compiled by generate
  (`CompileConfig`, fullgraph, compiled on CPU too).

    python bench/model_latency.py --original-python <ORIGINAL_VENV>/bin/python \
        --original-repo <ORIGINAL_REPO> [--repeats 5] [--threads N] [--write]
"""

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import transformers
from common import (
    OriginalSide,
    add_original_arguments,
    machine,
    peak_rss_growth_mib,
    peak_tensor_mib,
    timed_ms,
    write_section,
)
from safetensors.torch import load_file
from transformers import CompileConfig

from videollama2_hf import VideoLlama2Config, VideoLlama2ForConditionalGeneration
from videollama2_hf.convert_videollama2_weights_to_hf import convert_original_key


SECTION = "## Model latency"
NEW_TOKENS = 32
ORIGINAL_VIDEO_ID = -201
TOWER = {
    "model_type": "clip_vision_model",
    "hidden_size": 256,
    "intermediate_size": 1024,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "image_size": 224,
    "patch_size": 14,
}
LANGUAGE_MODEL = {
    "hidden_size": 512,
    "intermediate_size": 1536,
    "num_hidden_layers": 4,
    "num_attention_heads": 8,
    "num_key_value_heads": 4,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    # As in every released Mistral/Mixtral VideoLLaMA2 config (Mistral's own default is a 4096-token window). With a
    # window, transformers' static cache tracks the length as a Python int and a `dynamic=False` compile of the decode
    # step recompiles at every token.
    "sliding_window": None,
}


def write_checkpoint_files(folder: Path) -> dict:
    """The tower config + preprocessing the original builds its tower from; returns its config kwargs."""
    tower = folder / "clip_vision_tower"  # the original picks its tower class by "clip" in the path
    tower.mkdir()
    (tower / "config.json").write_text(json.dumps(TOWER))
    preprocessing = {"crop_size": 224, "size": 224, "image_mean": [0.5] * 3, "image_std": [0.5] * 3, "resample": 3}
    (tower / "preprocessor_config.json").write_text(json.dumps(preprocessing))
    return {
        **LANGUAGE_MODEL,
        "mm_vision_tower": str(tower),
        "mm_projector_type": "stc_connector",
        "mm_hidden_size": TOWER["hidden_size"],
        "mm_vision_select_layer": -2,
        "mm_vision_select_feature": "patch",
        "num_frames": 8,
        "tie_word_embeddings": False,
    }


class Ours:
    def __init__(self, folder: Path):
        """The original's saved tensors under our names (the converter's renaming), loaded strictly."""
        config = VideoLlama2Config(
            vision_config=TOWER,
            text_config={"model_type": "mistral", **LANGUAGE_MODEL},
            projector_type="stc_connector",
            num_frames=8,
            video_token_id=LANGUAGE_MODEL["vocab_size"],
            image_token_id=LANGUAGE_MODEL["vocab_size"] + 1,
        )
        self.model = VideoLlama2ForConditionalGeneration(config).eval()
        state = {convert_original_key(key): value for key, value in load_file(folder / "model.safetensors").items()}
        self.model.load_state_dict(state, strict=True)
        self.video_id = config.video_token_id

    def inputs(self, original_ids: np.ndarray, pixels: np.ndarray) -> dict:
        ids = []
        for token in original_ids[0].tolist():
            ids += [self.video_id] * self.visual_tokens(pixels.shape[0]) if token == ORIGINAL_VIDEO_ID else [token]
        return {"input_ids": torch.tensor([ids]), "pixel_values_videos": torch.from_numpy(pixels)[None]}

    def visual_tokens(self, num_frames: int) -> int:
        return self.model.config.get_num_visual_tokens(num_frames) if num_frames else 0

    def prefill(self, inputs):
        with torch.inference_mode():
            return timed_ms(lambda: self.model(**inputs))  # all logits, as the original computes

    def generate(self, inputs, **kwargs):
        out = []
        kwargs = {"do_sample": False, "max_new_tokens": NEW_TOKENS, "min_new_tokens": NEW_TOKENS, **kwargs}
        with torch.inference_mode():
            ms = timed_ms(lambda: out.append(self.model.generate(**inputs, **kwargs, pad_token_id=0)))
        return ms, out[0][0, inputs["input_ids"].shape[1] :].tolist()

    def profile(self, inputs) -> dict:
        model = self.model.model
        frames = inputs["pixel_values_videos"]
        with torch.inference_mode():
            features = []
            tower = lambda: model.vision_tower(frames.flatten(0, 1), output_hidden_states=True)  # noqa: E731
            tower_ms = timed_ms(lambda: features.append(tower().hidden_states[-2][:, 1:]))
            connector_ms = timed_ms(lambda: model.multi_modal_projector(features[0].unflatten(0, frames.shape[:2])))
            total_ms = timed_ms(lambda: self.model(**inputs))
        return {"tower": tower_ms, "connector": connector_ms, "language model": total_ms - tower_ms - connector_ms}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_original_arguments(parser)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads on both sides (default: torch's own choice)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)  # OriginalSide passes this process's thread count on
    original = OriginalSide(args.original_python, args.original_repo)
    folder = Path(tempfile.mkdtemp(prefix="videollama2-bench-"))
    try:
        config = write_checkpoint_files(folder)
        original.request("build_model", folder=str(folder), config=config, dtype="float32", seed=0)
        ours = Ours(folder)
        rng = np.random.default_rng(0)
        prompt = np.array([[1, *range(100, 164), ORIGINAL_VIDEO_ID, *range(200, 216)]])
        cases = {}
        for num_frames in (8, 16):
            pixels = rng.standard_normal((num_frames, 3, 224, 224), dtype=np.float32)
            path = folder / f"inputs_{num_frames}.npz"
            np.savez(path, input_ids=prompt, pixel_values=pixels)
            cases[num_frames] = (str(path), ours.inputs(prompt, pixels))
        path, inputs = cases[8]
        results = {}

        # Warm-up, then same generated ids on both sides.
        ours.prefill(inputs)
        original.request("prefill", inputs=path)
        ours_ids = ours.generate(inputs)[1]
        original_ids = original.request("generate", inputs=path, new_tokens=NEW_TOKENS)["ids"]
        same_ids = ours_ids == original_ids[-NEW_TOKENS:]
        print("same generated ids:", same_ids, flush=True)

        for name, run_ours, run_original in [
            ("prefill", lambda: ours.prefill(inputs), lambda: original.request("prefill", inputs=path)["ms"]),
            (
                f"prefill + {NEW_TOKENS}-token greedy generate",
                lambda: ours.generate(inputs)[0],
                lambda: original.request("generate", inputs=path, new_tokens=NEW_TOKENS)["ms"],
            ),
        ]:
            times = {"ours": [], "original": []}
            for _ in range(args.repeats):
                times["ours"].append(run_ours())
                times["original"].append(run_original())
            results[name] = {side: statistics.median(values) for side, values in times.items()}
            print(name, results[name], flush=True)

        profiles = {"ours": [], "original": []}
        for _ in range(args.repeats):
            profiles["ours"].append(ours.profile(inputs))
            profiles["original"].append(original.request("profile", inputs=path))
        profile = {}
        for side, runs in profiles.items():
            profile[side] = {part: statistics.median(run[part] for run in runs) for part in runs[0]}
        print("profile", profile, flush=True)

        path16, inputs16 = cases[16]
        memory = {}
        for name, new_tokens in [("forward", 0), (f"{NEW_TOKENS}-token greedy generate", NEW_TOKENS)]:
            run_ours = (lambda: ours.generate(inputs16)) if new_tokens else (lambda: ours.prefill(inputs16))
            memory[name] = {
                "ours": (
                    min(peak_rss_growth_mib(run_ours) for _ in range(2)),
                    peak_tensor_mib(run_ours),
                ),
                "original": tuple(
                    min(
                        original.request("peak_memory", inputs=path16, new_tokens=new_tokens, measure=measure)["mib"]
                        for _ in range(2)
                    )
                    for measure in ("rss", "tensors")
                ),
            }
            print("peak memory", name, memory[name], flush=True)

        decoding = {}
        compile_config = CompileConfig(fullgraph=True, dynamic=False)
        compile_config._compile_all_devices = True  # generate compiles on accelerators only unless told
        for name, kwargs in [
            ("dynamic cache, eager", {}),
            ("static cache, eager", {"cache_implementation": "static", "disable_compile": True}),
            ("static cache, compiled", {"cache_implementation": "static", "compile_config": compile_config}),
        ]:
            start = time.perf_counter()
            ours.generate(inputs, **kwargs)  # warm-up (compiles)
            first_s = time.perf_counter() - start
            # One new token (the prefill alone) and NEW_TOKENS alternate: their difference is the decode steps. The
            # static cache keeps the size of the longest call, so both share the compiled step's shapes.
            totals = {1: [], NEW_TOKENS: []}
            with torch.compiler.set_stance("fail_on_recompile"):  # the timed calls reuse the warm-up's graph
                for _ in range(args.repeats):
                    for new_tokens, runs in totals.items():
                        limits = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens}
                        runs.append(ours.generate(inputs, **kwargs, **limits)[0])
            step_ms = (statistics.median(totals[NEW_TOKENS]) - statistics.median(totals[1])) / (NEW_TOKENS - 1)
            decoding[name] = (1000 / step_ms, first_s)
            print(name, decoding[name], flush=True)
    finally:
        original.close()
        shutil.rmtree(folder, ignore_errors=True)

    visual = ours.visual_tokens(8)
    lines = [
        SECTION,
        "",
        f"Side by side with the original in one run (`bench/model_latency.py`), CPU, fp32. Machine: {machine()}; "
        f"ours: transformers {transformers.__version__}, the original: transformers "
        f"{original.versions['transformers']}. Same random weights: the original builds and saves a checkpoint "
        "(CLIP-like tower 224 px / 4 layers / width 256, STC connector, 4-layer Mistral width 512 with the "
        "32000-token vocabulary), ours loads its tensors (converter names, strict). 8 frames -> "
        f"{visual} visual tokens, prompt {inputs['input_ids'].shape[1]} tokens, {NEW_TOKENS} new tokens; the two "
        f"sides alternate, median of {args.repeats}. Same generated ids: {'yes' if same_ids else 'NO'}.",
        "",
        "| | ours (ms) | original (ms) | ours / original |",
        "|---|---:|---:|---:|",
    ]
    for name, row in results.items():
        lines.append(f"| {name} | {row['ours']:.1f} | {row['original']:.1f} | {row['ours'] / row['original']:.2f}x |")
    for part in profile["ours"]:
        ours_ms, original_ms = profile["ours"][part], profile["original"][part]
        lines.append(f"| prefill: {part} | {ours_ms:.1f} | {original_ms:.1f} | {ours_ms / original_ms:.2f}x |")
    lines += [
        "",
        f"Peak memory of the 16-frame video prompt ({inputs16['input_ids'].shape[1]} tokens), MiB. Tensors: the peak "
        "of the bytes held by tensors created during the call (torch.profiler's memory events; exact and repeatable). "
        "RSS: growth of the peak resident set over the RSS before the call (reset through /proc/self/clear_refs), "
        "best of 2; it also counts what the C allocator keeps or takes from the system (which depends on earlier "
        "calls). The forward returns every position's logits, as the original's does; in `generate`, ours keeps "
        "the last position's logits at the prefill (transformers 5's `logits_to_keep`), the original's "
        "transformers 4.40 computes all of them.",
        "",
        "| call | ours: tensors | original: tensors | ours / original | ours: RSS | original: RSS |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in memory.items():
        (ours_rss, ours_tensors), (original_rss, original_tensors) = row["ours"], row["original"]
        lines.append(
            f"| {name} | {ours_tensors:.1f} | {original_tensors:.1f} | {ours_tensors / original_tensors:.2f}x | "
            f"{ours_rss:.0f} | {original_rss:.0f} |"
        )
    lines += [
        "",
        f"Greedy decoding, ours (tokens/s over the {NEW_TOKENS - 1} decode steps: median {NEW_TOKENS}-token generate "
        "minus median 1-token generate, alternating; the first call includes compilation):",
        "",
        "| cache | tokens/s | first call (s) |",
        "|---|---:|---:|",
    ]
    for name, (tokens_per_s, first_s) in decoding.items():
        lines.append(f"| {name} | {tokens_per_s:.1f} | {first_s:.1f} |")
    body = "\n".join(lines) + "\n"
    print(body)
    if args.write:
        write_section(SECTION, body)
        print("wrote docs/benchmarks.md")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
