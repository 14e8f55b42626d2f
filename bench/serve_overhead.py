# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""What `videollama2-hf serve` adds to a request, side by side with the package's direct `generate` in one run.

For each case (text, image, 8- and 16-frame video, the audio-visual model hearing audio and a video with its sound),
on the tiny converted checkpoints the tests build from the parity fixtures, CPU, fp32, greedy, `--max-new-tokens`:
- direct: in this process, `processor.apply_chat_template` (media decoded and preprocessed, timed apart as
  "processing") then `model.generate`;
- serve: one chat completion request to `videollama2-hf serve` (a child process on 127.0.0.1) with the official
  `openai` client, non-streaming, timed around the call; the same media, as server paths.
Sides alternate, median of `--repeats` after one warm-up request each; the answers and token counts are checked
equal on every request. The goal is serve <= 1.2 x generate + processing (the media decode, which the server runs
too).

    python bench/serve_overhead.py [--repeats 7] [--max-new-tokens 16] [--write]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
import transformers
from common import REPO_ROOT, SHARED, machine, write_section


sys.path.insert(0, str(REPO_ROOT / "tests"))
from videollama2_test_utils import audio_visual_folder, converted_folder, running_server  # noqa: E402


SECTION = "## Serving overhead"
VIDEO = "sample_demo_1.mp4"
IMAGE = "extreme_ironing.jpg"
AUDIO = "bird-twitter-car.wav"
QUESTION = "What is happening here?"
# (case, checkpoint, content items of the question in OpenAI's format, the same items for the processor)
CASES = [
    ("text", "mistral_stc_f8", [], []),
    ("image", "mistral_stc_f8", [("image_url", IMAGE)], [("image", IMAGE)]),
    ("video, 8 frames", "mistral_stc_f8", [("video_url", VIDEO)], [("video", VIDEO)]),
    ("video, 16 frames", "mistral_stc_f16", [("video_url", VIDEO)], [("video", VIDEO)]),
    ("audio (AV model)", "av", [("audio_url", AUDIO)], [("audio", AUDIO)]),
    ("video + its sound (AV model)", "av", [("video_url", VIDEO)], [("video", VIDEO)]),
]


def openai_content(items, media: Path) -> list[dict]:
    content = [{"type": kind, kind: {"url": str(media / name)}} for kind, name in items]
    return content + [{"type": "text", "text": QUESTION}]


def processor_messages(items, media: Path) -> list[dict]:
    content = [{"type": kind, "url": str(media / name)} for kind, name in items]
    return [{"role": "user", "content": content + [{"type": "text", "text": QUESTION}]}]


def build_folders(root: Path) -> dict[str, Path]:
    fixtures = SHARED / "fixtures"
    folders = {name: converted_folder(fixtures, name, root / name) for name in ("mistral_stc_f8", "mistral_stc_f16")}
    folders["av"] = audio_visual_folder(fixtures, root / "av")
    return folders


class Direct:
    """The package's own inference in this process: processor, then greedy `generate`."""

    def __init__(self, folder: Path):
        from transformers import AutoModelForImageTextToText, AutoProcessor

        self.model = AutoModelForImageTextToText.from_pretrained(folder, dtype=torch.float32).eval()
        self.processor = AutoProcessor.from_pretrained(folder)
        self.audio = self.model.config.audio_config is not None

    def __call__(self, messages, max_new_tokens: int) -> tuple[float, float, str, int]:
        """(processing s, generate s, answer, answer tokens)."""
        has_video = any(item["type"] == "video" for item in messages[0]["content"])
        start = time.perf_counter()
        inputs = self.processor.apply_chat_template(
            messages,
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            load_audio_from_video=self.audio and has_video,  # what the server does for an audio-visual model
        )
        processed = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        generated = time.perf_counter()
        new_tokens = output[0, inputs["input_ids"].shape[1] :]
        answer = self.processor.decode(new_tokens, skip_special_tokens=True)
        return processed - start, generated - processed, answer, len(new_tokens)


def ask_server(client, model: str, content: list[dict], max_new_tokens: int) -> tuple[float, str, int]:
    start = time.perf_counter()
    response = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": content}], max_tokens=max_new_tokens, temperature=0
    )
    return time.perf_counter() - start, response.choices[0].message.content, response.usage.completion_tokens


def measure(folders, cases, repeats: int, max_new_tokens: int) -> list[dict]:
    from openai import OpenAI

    media = SHARED / "media"
    rows = []
    for checkpoint in dict.fromkeys(checkpoint for _, checkpoint, _, _ in cases):
        direct = Direct(folders[checkpoint])
        model = str(folders[checkpoint])
        with running_server(model) as server:
            client = OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0, timeout=600)
            for case, _, openai_items, processor_items in (case for case in cases if case[1] == checkpoint):
                messages = processor_messages(processor_items, media)
                content = openai_content(openai_items, media)
                direct(messages, max_new_tokens), ask_server(client, model, content, max_new_tokens)  # warm-up
                processing, generating, serving = [], [], []
                for _ in range(repeats):
                    process_s, generate_s, answer, tokens = direct(messages, max_new_tokens)
                    serve_s, served_answer, served_tokens = ask_server(client, model, content, max_new_tokens)
                    if (served_answer, served_tokens) != (answer, tokens):
                        raise AssertionError(
                            f"{case}: served {served_answer!r} ({served_tokens} tokens) != {answer!r}"
                        )
                    processing.append(process_s)
                    generating.append(generate_s)
                    serving.append(serve_s)
                row = {
                    "case": case,
                    "tokens": tokens,
                    "processing": statistics.median(processing) * 1000,
                    "generate": statistics.median(generating) * 1000,
                    "direct": statistics.median(p + g for p, g in zip(processing, generating)) * 1000,
                    "serve": statistics.median(serving) * 1000,
                }
                rows.append(row)
                print(
                    f"{case}: direct {row['direct']:.1f} ms (processing {row['processing']:.1f}, generate "
                    f"{row['generate']:.1f}), serve {row['serve']:.1f} ms",
                    flush=True,
                )
    return rows


def report(rows, repeats: int, max_new_tokens: int, load: str) -> str:
    lines = [
        SECTION,
        "",
        "One chat completion through `videollama2-hf serve` (transformers' server, the official `openai` client, "
        "non-streaming) against the package's direct `apply_chat_template` + greedy `generate` in one process, side "
        "by side in one run (`bench/serve_overhead.py`): tiny converted checkpoints of the parity fixtures "
        f"(`mistral_stc_f8`, `mistral_stc_f16`, the audio-visual `qwen2_siglip_av`), CPU, fp32, {max_new_tokens} new "
        f"tokens, media `{VIDEO}`, `{IMAGE}`, `{AUDIO}` given as server paths. Median of {repeats} after a warm-up, "
        "ms; every served answer equals the direct one, token for token. **processing**: the direct side's "
        "`apply_chat_template` (media decoding and preprocessing, which the server runs too); **goal**: serve <= "
        "1.2 x generate + processing.",
        "",
        f"Machine: {machine()}; transformers {transformers.__version__}. {load}",
        "",
        "| case | tokens | processing | generate | direct | serve | serve / direct | serve - direct | goal | met |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        goal = 1.2 * row["generate"] + row["processing"]
        lines.append(
            f"| {row['case']} | {row['tokens']} | {row['processing']:.1f} | {row['generate']:.1f} | "
            f"{row['direct']:.1f} | {row['serve']:.1f} | {row['serve'] / row['direct']:.2f}x | "
            f"{row['serve'] - row['direct']:+.1f} | {goal:.1f} | {'yes' if row['serve'] <= goal else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads of each side (default 1: the sides share the CPUs)"
    )
    parser.add_argument("--cases", nargs="*", help="only these cases (names as in the table)")
    parser.add_argument("--write", action="store_true", help="update this benchmark's section of docs/benchmarks.md")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the server's processes, which inherit it
    transformers.logging.set_verbosity_error()
    cases = [case for case in CASES if not args.cases or case[0] in args.cases]
    load = f"1-minute load average {Path('/proc/loadavg').read_text().split()[0]} at the start."
    with tempfile.TemporaryDirectory() as root:
        rows = measure(build_folders(Path(root)), cases, args.repeats, args.max_new_tokens)
    body = report(rows, args.repeats, args.max_new_tokens, load)
    print(body)
    if args.write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
