"""`videollama2-hf batch` on tiny fixture checkpoints: answers equal `ask` on each item alone, mixed modalities in one
batch, a corrupt item, resumption after SIGKILL, and the 2-process `accelerate launch` on CPU."""

import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from videollama2_test_utils import audio_visual_folder, converted_folder

from videollama2_hf.batch_output import shard_path
from videollama2_hf.cli import main
from videollama2_hf.inference import ask, load_model_and_processor


NEW_TOKENS = 6
# The timings differ from run to run; everything else of a line must not.
TIMINGS = ("prepare_s", "generate_s", "batch_size")


@pytest.fixture(autouse=True)
def cli_log_handler_per_test():
    """The command installs its log handler on the stderr of its first call, which a later test has closed (log
    messages are checked through caplog, whose handlers pytest attaches to the command's logger)."""
    log = logging.getLogger("transformers.videollama2_hf")
    yield
    for handler in list(log.handlers):
        log.removeHandler(handler)


@pytest.fixture(scope="module")
def tiny_model(fixtures_dir, tmp_path_factory):
    return converted_folder(fixtures_dir, "mistral_stc_f8", tmp_path_factory.mktemp("batch") / "tiny")


@pytest.fixture(scope="module")
def tiny_audio_visual(fixtures_dir, tmp_path_factory):
    return audio_visual_folder(fixtures_dir, tmp_path_factory.mktemp("batch-av") / "tiny-av")


def write_manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def visual_rows(media_dir: Path) -> list[dict]:
    """Videos and images with questions of different lengths, so that batches are really left-padded."""
    media = [
        ("video", "sample_demo_1.mp4"),
        ("image", "extreme_ironing.jpg"),
        ("video", "sample_demo_3.mp4"),
        ("image", "sora.png"),
        ("video", "sample_demo_9.mp4"),
        ("image", "waterview.jpg"),
        ("image", "desert.png"),
        ("video", "output_v_3V9tzjyr51I.mp4"),
    ]
    questions = ["What is happening?", "Describe it in detail, please, with every object you see.", "Why?"]
    return [
        {"id": f"item-{index}", kind: str(media_dir / name), "question": questions[index % len(questions)]}
        for index, (kind, name) in enumerate(media)
    ]


def batch_argv(model, manifest, output, *extra) -> list[str]:
    return [
        "batch",
        "--model",
        str(model),
        "--input",
        str(manifest),
        "--output",
        str(output),
        "--max-new-tokens",
        str(NEW_TOKENS),
        "--dtype",
        "float32",
        "--device",
        "cpu",
        "-q",
        *extra,
    ]


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def without_timings(records: list[dict]) -> list[dict]:
    return [{key: value for key, value in record.items() if key not in TIMINGS} for record in records]


def run(argv, capsys) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def expected_answers(model_folder: Path, rows: list[dict], with_audio: bool = False, audio: bool = False) -> dict:
    """Each item asked alone through the library, greedy: the reference the batched answers must equal."""
    model, processor = load_model_and_processor(str(model_folder), dtype="float32", device="cpu", audio=audio)
    answers = {}
    for row in rows:
        kind = next(kind for kind in ("video", "image", "audio") if kind in row)
        heard = with_audio and kind == "video"
        answers[row["id"]] = ask(
            model, processor, row["question"], max_new_tokens=NEW_TOKENS, with_audio=heard, **{kind: row[kind]}
        )
    return answers


def test_batched_answers_equal_ask_alone_in_input_order(tiny_model, media_dir, tmp_path, capsys):
    rows = visual_rows(media_dir)[:6]
    manifest = write_manifest(tmp_path / "questions.jsonl", rows)
    output = tmp_path / "answers.jsonl"
    code, out, _ = run(batch_argv(tiny_model, manifest, output, "--batch-size", "4", "--num-workers", "1"), capsys)
    assert code == 0
    summary = json.loads(out)
    assert summary["items"] == summary["answered_now"] == 6 and summary["errors"] == 0
    records = read_lines(output)
    assert [record["id"] for record in records] == [row["id"] for row in rows]
    expected = expected_answers(tiny_model, rows)
    for record in records:
        assert record["answer"] == expected[record["id"]] and record["answer"], record["id"]
        assert 1 <= record["answer_tokens"] <= NEW_TOKENS
    assert [record["batch_size"] for record in records] == [4, 4, 4, 4, 2, 2]
    # the rows of a batch had prompts of different lengths: the batch was padded
    assert len({record["prompt_tokens"] for record in records[:4]}) > 1
    # a second run has nothing left to do and rewrites nothing
    before = output.read_bytes()
    code, out, _ = run(batch_argv(tiny_model, manifest, output), capsys)
    assert code == 0 and json.loads(out)["answered_now"] == 0
    assert output.read_bytes() == before


def test_mixed_video_image_audio_batch_on_the_audio_visual_model(tiny_audio_visual, media_dir, tmp_path, capsys):
    """Videos heard with their sound, an image and a wav in one batch: each answer is the one asked alone."""
    rows = [
        {"id": "video", "video": str(media_dir / "sample_demo_1.mp4"), "question": "What happens?"},
        {"id": "image", "image": str(media_dir / "sora.png"), "question": "Describe the image."},
        {"id": "sound", "audio": str(media_dir / "bird-twitter-car.wav"), "question": "What can you hear?"},
    ]
    manifest = write_manifest(tmp_path / "mixed.jsonl", rows)
    output = tmp_path / "answers.jsonl"
    argv = batch_argv(tiny_audio_visual, manifest, output, "--batch-size", "3", "--with-audio", "--num-workers", "0")
    code, _, _ = run(argv, capsys)
    assert code == 0
    records = read_lines(output)
    assert [record["batch_size"] for record in records] == [3, 3, 3]
    expected = expected_answers(tiny_audio_visual, rows, with_audio=True, audio=True)
    assert {record["id"]: record["answer"] for record in records} == expected
    # the heard video and the wav each bring their audio tokens to the prompt
    prompt_tokens = {record["id"]: record["prompt_tokens"] for record in records}
    assert prompt_tokens["video"] > prompt_tokens["sound"] > prompt_tokens["image"]


def test_audio_rows_need_an_audio_visual_model(tiny_model, media_dir, tmp_path, capsys):
    rows = [{"id": "sound", "audio": str(media_dir / "bird-twitter-car.wav"), "question": "What can you hear?"}]
    manifest = write_manifest(tmp_path / "sound.jsonl", rows)
    code, _, err = run(batch_argv(tiny_model, manifest, tmp_path / "answers.jsonl"), capsys)
    assert code == 1 and "no audio tower" in err and "Traceback" not in err
    assert not (tmp_path / "answers.jsonl").exists()


def test_a_corrupt_or_missing_item_is_its_own_error_line(tiny_model, media_dir, tmp_path, capsys, caplog):
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(os.urandom(4096))
    rows = visual_rows(media_dir)[:4]
    rows[1:1] = [
        {"id": "corrupt", "video": str(corrupt), "question": "What is happening?"},
        {"id": "missing", "image": str(tmp_path / "absent.jpg"), "question": "What is happening?"},
    ]
    manifest = write_manifest(tmp_path / "questions.jsonl", rows)
    output = tmp_path / "answers.jsonl"
    # the command's logger does not propagate: caplog's handler is put on it (the fixture above removes it)
    logging.getLogger("transformers.videollama2_hf").addHandler(caplog.handler)
    code, out, _ = run(batch_argv(tiny_model, manifest, output, "--batch-size", "3", "--num-workers", "1"), capsys)
    assert code == 0
    assert json.loads(out)["errors"] == 2 and "2 items could not be answered" in caplog.text
    records = {record["id"]: record for record in read_lines(output)}
    assert list(records) == [row["id"] for row in rows]
    assert "corrupt" in records["corrupt"]["error"] and "answer" not in records["corrupt"]
    assert records["missing"]["error"].startswith("FileNotFoundError: No such file")
    expected = expected_answers(tiny_model, [row for row in rows if row["id"] not in ("corrupt", "missing")])
    assert {key: record["answer"] for key, record in records.items() if "answer" in record} == expected


def start_batch(argv: list[str], **kwargs) -> subprocess.Popen:
    """`python -m videollama2_hf ...` in its own session, so that a kill reaches its loader workers too."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "videollama2_hf", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        start_new_session=True,
        **kwargs,
    )


def whole_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def kill_after(process: subprocess.Popen, files: list[Path], lines: int, delay: float, timeout: float = 240) -> None:
    """SIGKILL the process group once `files` hold `lines` whole lines in all, plus `delay` seconds (or when it has
    ended by itself)."""
    deadline = time.monotonic() + timeout
    while sum(whole_lines(path) for path in files) < lines and process.poll() is None:
        assert time.monotonic() < deadline, "the batch job wrote nothing in time"
        time.sleep(0.01)
    time.sleep(delay)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate(timeout=60)


def test_resume_after_sigkill_at_a_random_point(tiny_model, media_dir, tmp_path, capsys):
    rows = visual_rows(media_dir)
    manifest = write_manifest(tmp_path / "questions.jsonl", rows)
    reference = tmp_path / "reference.jsonl"
    assert run(batch_argv(tiny_model, manifest, reference, "--batch-size", "2", "--num-workers", "0"), capsys)[0] == 0

    output = tmp_path / "answers.jsonl"
    argv = batch_argv(tiny_model, manifest, output, "--batch-size", "2", "--num-workers", "1")
    seed = random.randrange(2**32)
    chooser = random.Random(seed)
    lines, delay = chooser.randrange(len(rows) - 1), chooser.uniform(0, 0.5)
    kill_after(start_batch(argv), [output], lines, delay)
    written = output.read_bytes().count(b"\n") if output.exists() else 0
    context = f"seed {seed}: killed after {lines} lines + {delay:.2f} s, {written} lines on disk"
    # a write cut by the crash: the next start drops it
    with open(output, "ab") as answers:
        answers.write(b'{"id": "item-7", "answer": "half a li')

    rerun = start_batch(argv)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, f"{context}\n{err}"
    assert "Dropped the torn last line" in err, context
    records = read_lines(output)
    assert [record["id"] for record in records] == [row["id"] for row in rows], context
    assert without_timings(records) == without_timings(read_lines(reference)), context
    assert json.loads(out)["answered_before"] == written, context


def test_input_order_merge_after_an_earlier_partial_output(tiny_model, media_dir, tmp_path, capsys):
    """Items answered by an earlier run (on part of the input) are kept, the others added; the file ends in input
    order, and --overwrite starts over on that file only."""
    rows = visual_rows(media_dir)[:5]
    later = write_manifest(tmp_path / "later.jsonl", rows[3:])
    manifest = write_manifest(tmp_path / "questions.jsonl", rows)
    output = tmp_path / "answers.jsonl"
    assert run(batch_argv(tiny_model, later, output, "--num-workers", "0"), capsys)[0] == 0
    first = output.read_text().splitlines()
    code, out, _ = run(batch_argv(tiny_model, manifest, output, "--num-workers", "0"), capsys)
    assert code == 0 and json.loads(out)["answered_before"] == 2
    records = output.read_text().splitlines()
    assert [json.loads(line)["id"] for line in records] == [row["id"] for row in rows]
    assert records[3:] == first  # the earlier lines, untouched

    neighbour = tmp_path / "answers.jsonl.bak"
    neighbour.write_text("kept\n")
    shard_path(output, 3).write_text(first[0] + "\n")
    code, out, _ = run(batch_argv(tiny_model, later, output, "--overwrite", "--num-workers", "0"), capsys)
    assert code == 0 and json.loads(out)["answered_now"] == 2
    assert [json.loads(line)["id"] for line in output.read_text().splitlines()] == ["item-3", "item-4"]
    assert not shard_path(output, 3).exists() and neighbour.read_text() == "kept\n"


def test_folder_and_csv_inputs(tiny_model, media_dir, tmp_path, capsys):
    folder = tmp_path / "media"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(media_dir / "sora.png", folder / "b.png")
    shutil.copy(media_dir / "sample_demo_3.mp4", folder / "sub" / "a.mp4")
    (folder / "notes.txt").write_text("not media")
    output = tmp_path / "folder.jsonl"
    argv = batch_argv(tiny_model, folder, output, "--question", "What is happening?", "--num-workers", "0")
    assert run(argv, capsys)[0] == 0
    records = read_lines(output)
    assert [(record["id"], "image" in record, "video" in record) for record in records] == [
        ("b.png", True, False),
        ("sub/a.mp4", False, True),
    ]
    # a CSV manifest: paths relative to it, the row's question wins over --question
    table = folder / "questions.csv"
    table.write_text("id,video,image,question\n1,sub/a.mp4,,Why?\n2,,b.png,\n")
    output = tmp_path / "csv.jsonl"
    assert run(batch_argv(tiny_model, table, output, "--question", "What?", "--num-workers", "0"), capsys)[0] == 0
    records = read_lines(output)
    assert [(record["id"], record["question"]) for record in records] == [("1", "Why?"), ("2", "What?")]
    assert records[0]["video"] == str(folder / "sub" / "a.mp4")


@pytest.mark.parametrize(
    "rows,message",
    [
        ([{"id": 1, "video": "a.mp4", "question": "?"}, {"id": "1", "image": "b.jpg", "question": "?"}], "twice"),
        ([{"id": 1, "video": "a.mp4", "image": "b.jpg", "question": "?"}], "exactly one of video, image and audio"),
        ([{"id": 1, "video": "a.mp4"}], "no question"),
        ([], "holds no rows"),
    ],
)
def test_manifest_errors_exit_with_1_before_the_model_loads(rows, message, tmp_path, capsys):
    manifest = write_manifest(tmp_path / "questions.jsonl", rows)
    code, _, err = run(batch_argv(tmp_path / "no-model", manifest, tmp_path / "answers.jsonl"), capsys)
    assert code == 1 and message in err and "Traceback" not in err


def test_input_and_output_errors_exit_with_1(tiny_model, tmp_path, capsys):
    manifest = tmp_path / "questions.jsonl"
    manifest.write_text('{"id": 1, "video": "a.mp4", "question": "?"}\nnot json\n')
    code, _, err = run(batch_argv(tiny_model, manifest, tmp_path / "answers.jsonl"), capsys)
    assert code == 1 and "questions.jsonl:2 is not a JSON line" in err
    code, _, err = run(batch_argv(tiny_model, tmp_path / "absent", tmp_path / "answers.jsonl"), capsys)
    assert code == 1 and "No such input" in err
    (tmp_path / "media").mkdir()
    code, _, err = run(batch_argv(tiny_model, tmp_path / "media", tmp_path / "answers.jsonl"), capsys)
    assert code == 1 and "holds no video, image or audio files" in err
    manifest.write_text('{"id": 1, "video": "a.mp4", "question": "?"}\n')
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text("first line of something else\nsecond\n")
    code, _, err = run(batch_argv(tiny_model, manifest, foreign), capsys)
    assert code == 1 and "is not an answer line" in err and "--overwrite" in err
    assert foreign.read_text() == "first line of something else\nsecond\n"


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--batch-size", "0"], "--batch-size must be positive"),
        (["--num-workers", "-1"], "--num-workers must be zero or more"),
        (["--temperature", "0.5"], "need --do-sample"),
        (["--question", " "], "the question is empty"),
    ],
)
def test_usage_errors_exit_with_2(extra, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(batch_argv(tmp_path, tmp_path / "in.jsonl", tmp_path / "out.jsonl", *extra))
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def _accelerate_cpu_launch_unavailable() -> str | None:
    import torch.distributed

    if shutil.which("accelerate") is None and not Path(sys.executable).with_name("accelerate").exists():
        return "the accelerate command is not installed"
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        return "torch has no gloo backend, which accelerate's multi-process CPU launch needs"
    return None


def test_two_process_accelerate_launch_resumes_and_merges(tiny_model, media_dir, tmp_path, capsys):
    """`accelerate launch` with 2 CPU processes: killed once both shards hold answers, launched again, it ends with
    the answers of a 1-process run in input order and no shard left."""
    reason = _accelerate_cpu_launch_unavailable()
    if reason:
        pytest.skip(reason)
    rows = visual_rows(media_dir)[:6]
    manifest = write_manifest(tmp_path / "questions.jsonl", rows)
    reference = tmp_path / "reference.jsonl"
    assert run(batch_argv(tiny_model, manifest, reference, "--batch-size", "2", "--num-workers", "0"), capsys)[0] == 0

    output = tmp_path / "answers.jsonl"
    accelerate = shutil.which("accelerate") or str(Path(sys.executable).with_name("accelerate"))
    launch = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0"]
    launch += ["-m", "videollama2_hf"]
    argv = batch_argv(tiny_model, manifest, output, "--batch-size", "1", "--num-workers", "1")
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

    def start():
        return subprocess.Popen(
            launch + argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            start_new_session=True,
        )

    first = start()
    shards = [shard_path(output, 0), shard_path(output, 1)]
    deadline = time.monotonic() + 240
    while not all(whole_lines(shard) for shard in shards) and first.poll() is None:
        assert time.monotonic() < deadline, "the launch wrote nothing in time"
        time.sleep(0.01)
    if first.poll() is None:
        os.killpg(first.pid, signal.SIGKILL)
    first.communicate(timeout=60)
    answered = sum(whole_lines(path) for path in [output, *shards])

    second = start()
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-3000:]
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["processes"] == 2 and summary["answered_before"] == answered
    records = read_lines(output)
    assert [record["id"] for record in records] == [row["id"] for row in rows]
    assert without_timings(records) == without_timings(read_lines(reference))
    assert not any(path.exists() for path in shards)
