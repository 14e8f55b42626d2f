# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""Throughput of `videollama2-hf batch` side by side with the original VideoLLaMA2's own dataset loop, CPU, fp32.

Same random weights on both sides: the original's side (bench/original_side.py, in its environment) builds a random
Mistral-based VideoLLaMA2 (the model-latency benchmark's sizes) and saves it in the released layout with the Mistral
tokenizer of the parity fixtures; both sides load that folder. 48 items: the 6 real videos of ../shared/media
repeated 8 times, 8 frames, one question, at most 16 new tokens, greedy.

- the original: `model_init`, then `process_video` (decord) + `mm_infer` one video at a time, as its inference
  scripts go (a fresh process of its environment);
- ours: `python -m videollama2_hf batch` as a user runs it: batch size 1 and a sweep, with loader workers or none;
  `accelerate launch --multi_gpu --num_processes 2` (CPU processes, 1 torch thread each) vs 1 process (2 threads).

Items/s: the items over the time from the model load to the last answer written (the job's own `seconds`; the
original timed the same way), so both sides' interpreter start and imports are left out and both pay their model
load. CPU seconds per item: the user + system time of every process of the run (the children this process waited
for), which a machine shared with other work inflates far less than the wall time. The original runs first and last
in each round, so that both sides see the machine's load. Peak RSS of every process (VmHWM) and the peak of the job's
summed PSS, sampled from /proc every 0.1 s.

    python bench/batch_throughput.py --original-python <ORIGINAL_VENV>/bin/python \\
        --original-repo <ORIGINAL_REPO> [--batch-sizes 2 4 8 16] [--write]
"""

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

import psutil
import torch
from common import SHARED, OriginalSide, add_original_arguments, machine, write_section
from model_latency import write_checkpoint_files


SECTION = "## Batch throughput"
VIDEOS = sorted(path.name for path in (SHARED / "media").glob("*.mp4"))
REPEATS = 8
NUM_FRAMES = 8  # the bench model's num_frames, which the original's model_init binds to process_video
NEW_TOKENS = 16
QUESTION = "What is happening in this video?"
HEADER = (
    "| run | batch size | loader workers | processes x threads | load at start | items/s | vs the original "
    "| CPU s / item | vs the original | peak RSS: model process | peak RSS: loader worker | job PSS |\n"
    "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
)
TOKENIZER_FILES = ("tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


class PeakMemory(threading.Thread):
    """Peak RSS (VmHWM) of every process of a job (the command and its descendants) and the peak of their summed
    PSS (shared pages counted once), sampled until `stop()`."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.peaks: dict[int, float] = {}
        self.commands: dict[int, tuple[int, str]] = {}
        self.job_pss = 0.0
        self.running = True

    def run(self):
        while self.running:
            try:
                processes = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0.0
            for process in processes:
                try:
                    if process.pid not in self.commands:
                        self.commands[process.pid] = (process.ppid(), " ".join(process.cmdline()))
                    self.peaks[process.pid] = max(self.peaks.get(process.pid, 0.0), _status_mib(process.pid))
                    total += _pss_mib(process.pid)
                except (psutil.NoSuchProcess, FileNotFoundError, ProcessLookupError, ValueError):
                    continue
            self.job_pss = max(self.job_pss, total)
            time.sleep(0.1)

    def stop(self) -> dict:
        self.running = False
        self.join()
        roles = {"launcher": [], "model": [], "worker": []}
        for pid, (parent, command) in self.commands.items():
            if "accelerate" in command.split(" -m ")[0]:
                roles["launcher"].append(self.peaks.get(pid, 0.0))
            elif self.commands.get(parent, (None, None))[1] == command:
                roles["worker"].append(self.peaks.get(pid, 0.0))  # forked by the model process: same command line
            elif "videollama2_hf" in command:
                roles["model"].append(self.peaks.get(pid, 0.0))
        return {"roles": roles, "job_pss": self.job_pss}


def _status_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _pss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    return 0.0


def build_model(original: OriginalSide, folder: Path, fixtures: Path) -> None:
    """The random model in the released layout (fp16 weights, which the original's loader reads as they are) with the
    fixtures' Mistral tokenizer, whose template the original's `mm_infer` and our processor both use."""
    config = write_checkpoint_files(folder)
    original.request("build_model", folder=str(folder), config=config, dtype="float16", seed=0)
    for name in TOKENIZER_FILES:
        shutil.copy(fixtures / "mistral_stc_f8" / "original_checkpoint" / name, folder / name)


def run_ours(command: list[str], output: Path, environment: dict) -> dict:
    """One `batch` job as a subprocess: its summary, its answers by id and its processes' peak memory."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    memory = PeakMemory(process.pid)
    memory.start()
    out, err = process.communicate()
    peaks = memory.stop()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{err[-3000:]}")
    summary = json.loads(out.strip().splitlines()[-1])
    answers = {}
    for line in output.read_text().splitlines():
        record = json.loads(line)
        answers[record["id"]] = record["answer"]
    return {"summary": summary, "answers": answers, "memory": peaks}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_original_arguments(parser)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[2, 4, 8, 16], help="the sweep of ours")
    parser.add_argument("--rounds", type=int, default=1, help="passes over every run, one after the other")
    parser.add_argument("--threads", type=int, help="torch threads of one process, both sides (default: torch's)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)  # OriginalSide passes this process's thread count on
    threads = torch.get_num_threads()
    folder = Path(tempfile.mkdtemp(prefix="videollama2-batch-bench-"))
    try:
        model = folder / "VideoLLaMA2-bench"
        model.mkdir()
        builder = OriginalSide(args.original_python, args.original_repo)
        build_model(builder, model, SHARED / "fixtures")
        builder.close()
        videos = [str(SHARED / "media" / name) for name in VIDEOS] * REPEATS
        manifest = folder / "questions.jsonl"
        rows = [{"id": index, "video": video, "question": QUESTION} for index, video in enumerate(videos)]
        manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
        output = folder / "answers.jsonl"
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        base = ["--model", str(model), "--input", str(manifest), "--output", str(output)]
        base += ["--max-new-tokens", str(NEW_TOKENS), "--num-frames", str(NUM_FRAMES)]
        base += ["--dtype", "float32", "--device", "cpu", "--overwrite", "-q"]
        versions = {}

        def original() -> dict:
            side = OriginalSide(args.original_python, args.original_repo)  # fresh: its peak RSS is the loop's alone
            versions.update(side.versions)
            run = side.request(
                "mm_infer_loop", folder=str(model), videos=videos, question=QUESTION, new_tokens=NEW_TOKENS
            )
            side.close()
            memory = {"roles": {"launcher": [], "model": [run["peak_rss_mib"]], "worker": []}, "job_pss": None}
            answers = dict(enumerate(run["answers"]))
            return {"rate": len(videos) / run["seconds"], "answers": answers, "memory": memory, "processes": 1}

        def ours(batch_size: int, workers: int | None, processes: int = 1) -> dict:
            per_process = max(1, threads // processes)
            options = ["--batch-size", str(batch_size), "--num-threads", str(per_process)]
            options += [] if workers is None else ["--num-workers", str(workers)]
            if processes > 1:
                command = [str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu"]
                command += ["--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no"]
                command += ["--dynamo_backend", "no", "--main_process_port", "0", "-m", "videollama2_hf", "batch"]
            else:
                command = [sys.executable, "-m", "videollama2_hf", "batch"]
            run = run_ours(command + base + options, output, environment)
            summary = run.pop("summary")
            run.update(rate=summary["items"] / summary["seconds"], processes=processes, threads=per_process)
            run.update(batch_size=batch_size, workers=summary["num_workers"])
            return run

        plan = {"original": original, "bs1_no_workers": lambda: ours(1, 0), "bs1": lambda: ours(1, None)}
        plan.update({f"bs{size}": lambda size=size: ours(size, None) for size in args.batch_sizes})
        results = {key: [] for key in plan}
        loads = []
        best = None

        def measure(key: str) -> None:
            load = os.getloadavg()[0]
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            run = plan[key]()
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
            run.update(load=load, cpu_per_item=cpu / len(videos))
            results.setdefault(key, []).append(run)
            print(key, f"{run['rate']:.3f} items/s, {run['cpu_per_item']:.2f} CPU s/item, load {load:.1f}", flush=True)

        for _ in range(args.rounds):
            loads.append(os.getloadavg()[0])
            for key in list(plan):
                measure(key)
            if best is None:
                best = max(args.batch_sizes, key=lambda size: results[f"bs{size}"][0]["rate"])
                plan["best_no_workers"] = lambda size=best: ours(size, 0)
                plan["two_processes"] = lambda size=best: ours(size, None, processes=2)
                measure("best_no_workers")
                measure("two_processes")
            measure("original")  # last as well as first: both sides meet the machine's changing load
        loads.append(os.getloadavg()[0])
        report(args, results, best, threads, versions, loads)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def report(args, results, best, threads, versions, loads):
    import transformers

    def rate(key) -> float:
        return statistics.median(run["rate"] for run in results[key])

    def rates(key) -> str:
        each = ", ".join(f"{run['rate']:.2f}" for run in results[key])
        return f"{rate(key):.2f}" + (f" ({each})" if len(results[key]) > 1 else "")

    def cpu(key) -> float:
        return statistics.median(run["cpu_per_item"] for run in results[key])

    def cpus(key) -> str:
        each = ", ".join(f"{run['cpu_per_item']:.2f}" for run in results[key])
        return f"{cpu(key):.2f}" + (f" ({each})" if len(results[key]) > 1 else "")

    def load(key) -> str:
        return ", ".join(f"{run['load']:.1f}" for run in results[key])

    def memory(key) -> str:
        roles = {role: [] for role in ("model", "worker")}
        for run in results[key]:
            for role in roles:
                roles[role] += run["memory"]["roles"][role]
        processes = results[key][0]["processes"]
        model = f"{max(roles['model']):.0f}" + (f" (x{processes})" if processes > 1 else "")
        workers = f"{max(roles['worker']):.0f}" if roles["worker"] else "-"
        pss = [run["memory"]["job_pss"] for run in results[key] if run["memory"]["job_pss"]]
        return f"{model} | {workers} | {max(pss):.0f}" if pss else f"{model} | {workers} | -"

    original, original_cpu = rate("original"), cpu("original")
    rows = [
        f"| the original: `model_init`, then `process_video` + `mm_infer` per video | 1 | - | 1 x {threads} | "
        f"{load('original')} | {rates('original')} | 1.00x | {cpus('original')} | 1.00x | {memory('original')} |"
    ]
    labelled = [
        ("bs1_no_workers", "`batch --batch-size 1 --num-workers 0` (no batching, no overlap)"),
        ("bs1", "`batch --batch-size 1` (overlap only)"),
        *[(f"bs{size}", f"`batch --batch-size {size}`") for size in args.batch_sizes],
        ("best_no_workers", f"`batch --batch-size {best} --num-workers 0` (batching only)"),
        ("two_processes", f"`accelerate launch --num_processes 2 ... batch --batch-size {best}`"),
    ]
    for key, label in labelled:
        run = results[key][0]
        rows.append(
            f"| {label} | {run['batch_size']} | {run['workers']} | {run['processes']} x {run['threads']} | "
            f"{load(key)} | {rates(key)} | {rate(key) / original:.2f}x | {cpus(key)} | {original_cpu / cpu(key):.2f}x "
            f"| {memory(key)} |"
        )
    reference = results["bs1_no_workers"][0]["answers"]
    ours_keys = [key for key in results if key != "original"]
    consistent = all(run["answers"] == reference for key in ours_keys for run in results[key])
    same = sum(reference[index] == answer for index, answer in results["original"][0]["answers"].items())
    best_rate = rate(f"bs{best}")
    options = f"--batch-sizes {' '.join(map(str, args.batch_sizes))} --rounds {args.rounds}"
    options += f" --threads {args.threads}" if args.threads else ""
    best_cpu = cpu(f"bs{best}")
    body = f"""{SECTION}

Side by side in one run (`bench/batch_throughput.py`), CPU, fp32. Machine: {machine()}; 1-minute load average
{", ".join(f"{load:.1f}" for load in loads)} at the start of each round and at the end (the 2 CPUs are shared with
other work, so the figures vary from run to run). Ours: transformers {transformers.__version__}; the original:
transformers {versions.get("transformers")}, decord. Same random weights: the original builds a random Mistral-based
VideoLLaMA2 (CLIP-like tower 224 px / 4 layers / width 256, STC connector, 4-layer Mistral width 512, the 32000-token
vocabulary) and saves it in the released layout; both sides load that folder. {len(reference)} items: the
{len(VIDEOS)} videos of `../shared/media` repeated {REPEATS} times, {NUM_FRAMES} frames, one question, at most
{NEW_TOKENS} new tokens, greedy. The original runs first and last in each round; a run measured more than once shows
the median and each run in parentheses. Load at start: the 1-minute load average when the run started. Items/s
(higher is better): items over the time from the model load to the last answer written, so both sides pay their
model load and neither its interpreter start and imports. CPU s / item (lower is better; "vs the original" is the
original's over ours): user + system CPU time of every process of the run per item, interpreter start and imports
included; the wall-clock figures depend on how much of the 2 CPUs the other work left, CPU time much less. Peak RSS
(MiB): VmHWM of each model process and of its loader workers (forked from the model process, so their RSS counts the
pages they share with it); job PSS: the peak of the summed proportional set size of every process of the job
(shared pages counted once). Threads: torch's threads per process (`--num-threads`).

{HEADER}
{chr(10).join(rows)}

Best batch size: {best}, {best_rate:.2f} items/s = {best_rate / original:.2f}x the original's {original:.2f} items/s
(goal 2x: {"met" if best_rate >= 2 * original else "NOT met"}); CPU time per item: the original's
{original_cpu:.2f} s, ours {best_cpu:.2f} s ({original_cpu / best_cpu:.2f}x less). What each part buys: batching
alone (batch size {best}, no loader workers) {rate("best_no_workers") / rate("bs1_no_workers"):.2f}x batch size 1
without workers; overlap alone (batch size 1, loader workers) {rate("bs1") / rate("bs1_no_workers"):.2f}x. Two
processes of 1 thread vs one of {threads}, batch size {best}: {rate("two_processes") / best_rate:.2f}x. Every run
of ours gives the same answers: {"yes" if consistent else "NO"}; ours vs the original's: {same}/{len(reference)}
identical.

Commands (`<ORIGINAL_VENV>`, `<ORIGINAL_REPO>`: the original's environment and code, see "Running them"; `MODEL`
and `questions.jsonl` are the folder and manifest the benchmark writes in a temporary folder):

```bash
python bench/batch_throughput.py --original-python <ORIGINAL_VENV>/bin/python --original-repo <ORIGINAL_REPO> \\
    {options} --write
# each of our runs, as the benchmark starts it:
python -m videollama2_hf batch --model MODEL --input questions.jsonl --output answers.jsonl --max-new-tokens 16 \\
    --num-frames 8 --dtype float32 --device cpu --overwrite -q --batch-size N --num-threads {threads} [--num-workers W]
accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no \\
    --main_process_port 0 -m videollama2_hf batch ... --batch-size {best} --num-threads {max(1, threads // 2)}
```
"""
    print(body)
    if args.write:
        write_section(SECTION, body)


if __name__ == "__main__":
    main()
