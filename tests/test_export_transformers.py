"""`videollama2-hf export-transformers` into the sdist of the installed transformers, then that tree used as
transformers itself: in fresh interpreters that put the tree's `src` first, cannot import `videollama2_hf` and never
trust remote code, the top-level import, the Auto classes (with the package's logits), the image-text-to-text
pipeline on a video, the exported testers with the release's own mixins, and `transformers serve` answering the
`openai` client with the package's greedy text.
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from conftest import HF_TESTS_DIR, SHARED_DIR
from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline
from transformers_mixins import installed_transformers_version, sdist_archive
from videollama2_test_utils import (
    _BLOCK_THE_PACKAGE,
    audio_visual_folder,
    converted_folder,
    stop_by_pid,
    wait_until_answering,
)

from videollama2_hf.cli import main


pytestmark = pytest.mark.slow

TESTS_DIR = Path(__file__).resolve().parent
QUESTION = "What is happening?"
GREEDY = {"do_sample": False, "max_new_tokens": 5}
# The exported testers, less two of the model tester's three configurations: the package runs all three (same code)
# out of tree; in the tree the widest one (SigLIP, Qwen2, STC v35, BEATs audio) keeps the run to a few minutes.
TESTER_SELECTION = ["-k", "not VideoLlama2ClipMistralStcTest and not VideoLlama2SiglipQwen2StcV35Test"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """The installed release's sdist, unpacked, with the model exported into it."""
    root = tmp_path_factory.mktemp("sdist")
    with tarfile.open(sdist_archive(installed_transformers_version())) as archive:
        archive.extractall(root, filter="data")
    (tree,) = root.iterdir()
    assert main(["export-transformers", str(tree)]) == 0
    return tree


@pytest.fixture(scope="module")
def folders(fixtures_dir, tmp_path_factory):
    return {
        "mistral": converted_folder(fixtures_dir, "mistral_stc_f8", tmp_path_factory.mktemp("mistral")),
        "audio-visual": audio_visual_folder(fixtures_dir, tmp_path_factory.mktemp("audio-visual")),
    }


def chat(video: Path) -> list[dict]:
    return [{"role": "user", "content": [{"type": "video", "path": str(video)}, {"type": "text", "text": QUESTION}]}]


def run_in_tree(tree: Path, script: str, *args, cwd: Path, timeout: int = 300, wait: bool = True):
    """Run `script` (a file, so that spawned workers import it again) with `args` in `python -I`, the tree's `src`
    first on the path and `videollama2_hf` unimportable, offline."""
    path = cwd / f"script_{len(list(cwd.glob('script_*.py')))}.py"
    prelude = f"{_BLOCK_THE_PACKAGE}\nsys.path.insert(0, {str(tree / 'src')!r})\n"
    path.write_text(prelude + script)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(cwd / "modules")}
    env.update(VIDEOLLAMA2_SHARED=str(SHARED_DIR), TOKENIZERS_PARALLELISM="false")
    command = [sys.executable, "-I", str(path), *map(str, args)]
    if not wait:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    completed = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert completed.returncode == 0, (completed.stdout + completed.stderr)[-6000:]
    return completed.stdout


def digest(tree: Path) -> dict[str, str]:
    return {
        str(path.relative_to(tree)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(tree.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_export_twice_gives_the_same_tree(tree):
    before = digest(tree)
    assert main(["export-transformers", str(tree)]) == 0
    assert digest(tree) == before
    model_dir = tree / "src" / "transformers" / "models" / "videollama2"
    assert (model_dir / "modeling_videollama2.py").is_file() and (
        model_dir / "convert_videollama2_weights_to_hf.py"
    ).is_file()
    assert not any(
        "videollama2_hf" in line
        for line in (model_dir / "modeling_videollama2.py").read_text().splitlines()
        if "import" in line
    )
    assert (tree / "tests" / "models" / "videollama2" / "test_modeling_videollama2.py").is_file()
    assert (
        "[[autodoc]] VideoLlama2ForConditionalGeneration"
        in (tree / "docs/source/en/model_doc/videollama2.md").read_text()
    )


def test_exported_code_passes_the_release_lint_rules_but_import_order(tree):
    """transformers' ruff rules (its pyproject) on the exported folders: only the order of the imports the export
    made relative, which `make style` (`ruff check --fix`) sorts, is left to fix."""
    folders = [tree / "src" / "transformers" / "models" / "videollama2", tree / "tests" / "models" / "videollama2"]
    command = [sys.executable, "-m", "ruff", "check", "--no-cache", "--ignore", "I001", *map(str, folders)]
    lint = subprocess.run(command, cwd=tree, capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout[-3000:]


@pytest.mark.parametrize(
    ("make_tree", "message"),
    [
        (lambda path: path / "absent", "is not a folder"),
        (lambda path: path, "is not a transformers source tree"),
        (lambda path: _fake_tree(path, "4.0.0"), f"holds transformers 4.0.0 but {installed_transformers_version()}"),
    ],
    ids=["absent", "not a tree", "other release"],
)
def test_export_refuses_a_wrong_tree_in_one_line(tmp_path, capsys, make_tree, message):
    assert main(["export-transformers", str(make_tree(tmp_path))]) == 1
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1


def _fake_tree(path: Path, release: str) -> Path:
    (path / "src" / "transformers" / "models" / "auto").mkdir(parents=True)
    (path / "src" / "transformers" / "__init__.py").write_text(f'__version__ = "{release}"\n')
    return path


IN_TREE_MODEL = """
import json
import torch
import transformers
import transformers.models.videollama2.convert_videollama2_weights_to_hf  # the conversion script imports in-tree
from transformers import AutoModelForImageTextToText, AutoProcessor, VideoLlama2ForConditionalGeneration

folder, chat, logits_file, audio = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4] == "audio"
model = AutoModelForImageTextToText.from_pretrained(folder).eval()
processor = AutoProcessor.from_pretrained(folder)
inputs = processor.apply_chat_template(
    chat, add_generation_prompt=True, tokenize=True, return_dict=True, load_audio_from_video=audio
)
with torch.no_grad():
    torch.save(model(**inputs).logits, logits_file)
parts = [model, processor, processor.video_processor, processor.image_processor, processor.feature_extractor]
print(json.dumps({
    "transformers": transformers.__file__,
    "classes": [f"{type(part).__module__}.{type(part).__name__}" for part in parts if part is not None],
    "top_level_class": type(model) is VideoLlama2ForConditionalGeneration,
    "package_modules": sorted(name for name in sys.modules if name.startswith("videollama2_hf")),
    "helpers_at_top_level": [name for name in ("media_source", "kaldi_fbank") if hasattr(transformers, name)],
}))
"""


@pytest.mark.parametrize("variant", ["mistral", "audio-visual"])
def test_auto_classes_load_the_in_tree_model_with_the_package_logits(tree, folders, media_dir, tmp_path, variant):
    folder, video, audio = folders[variant], media_dir / "sample_demo_1.mp4", variant == "audio-visual"
    conversation = chat(video)
    if audio:  # the audio-visual model hears the video too
        conversation[0]["content"].insert(1, {"type": "audio"})
    logits_file = tmp_path / "logits.pt"
    out = run_in_tree(
        tree, IN_TREE_MODEL, folder, json.dumps(conversation), logits_file, "audio" * audio, cwd=tmp_path
    )
    report = json.loads(out.strip().splitlines()[-1])
    assert report["transformers"] == str(tree / "src" / "transformers" / "__init__.py")
    assert all(name.startswith("transformers.models.videollama2.") for name in report["classes"]), report["classes"]
    assert len(report["classes"]) == 4 + audio
    assert report["top_level_class"] and report["package_modules"] == [] and report["helpers_at_top_level"] == []

    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    processor = AutoProcessor.from_pretrained(folder)
    assert type(model).__module__ == "videollama2_hf.modeling_videollama2"
    inputs = processor.apply_chat_template(
        conversation, add_generation_prompt=True, tokenize=True, return_dict=True, load_audio_from_video=audio
    )
    with torch.no_grad():
        expected = model(**inputs).logits
    torch.testing.assert_close(torch.load(logits_file), expected, rtol=0, atol=0)


IN_TREE_PIPELINE = """
import json
from transformers import pipeline

folder, chat, generate_kwargs = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
pipe = pipeline("image-text-to-text", model=folder)
answer = pipe(text=chat, generate_kwargs=generate_kwargs, return_full_text=False)[0]["generated_text"]
print(json.dumps({"model": type(pipe.model).__module__, "answer": answer}))
"""


@pytest.fixture(scope="module")
def package_answer(folders, media_dir):
    pipe = pipeline("image-text-to-text", model=str(folders["mistral"]))
    assert type(pipe.model).__module__ == "videollama2_hf.modeling_videollama2"
    answer = pipe(text=chat(media_dir / "sample_demo_1.mp4"), generate_kwargs=GREEDY, return_full_text=False)
    return answer[0]["generated_text"]


def test_pipeline_answers_about_a_video_in_tree(tree, folders, media_dir, tmp_path, package_answer):
    conversation = json.dumps(chat(media_dir / "sample_demo_1.mp4"))
    out = run_in_tree(tree, IN_TREE_PIPELINE, folders["mistral"], conversation, json.dumps(GREEDY), cwd=tmp_path)
    report = json.loads(out.strip().splitlines()[-1])
    assert report == {"model": "transformers.models.videollama2.modeling_videollama2", "answer": package_answer}


RUN_TESTERS = """
sys.path.append(sys.argv[1])
from transformers_mixins import restore_removed_defaults

sys.path.remove(sys.argv[1])
import pytest

restore_removed_defaults()
sys.exit(pytest.main(sys.argv[2:]))
"""


def test_exported_testers_pass_with_the_release_mixins(tree, tmp_path):
    """The sdist ships the release's top-level mixins (`tests/*.py`); the rest of transformers' `tests/` (the
    package, `generation/`, `utils/`) and `utils/` come from the shared hf-tests, as for the package's testers."""
    for part in ("tests", "utils"):
        shutil.copytree(HF_TESTS_DIR / part, tree / part, dirs_exist_ok=True, copy_function=_copy_if_absent)
    arguments = ["-p", "no:cacheprovider", "-q", "-x", "-o", "log_cli=false", "-W", "ignore::DeprecationWarning"]
    arguments += ["--rootdir", tree, tree / "tests" / "models" / "videollama2", *TESTER_SELECTION]
    # the package's tests/ folder only lends `transformers_mixins` to the runner, which removes it from the path
    out = run_in_tree(tree, RUN_TESTERS, TESTS_DIR, *arguments, cwd=tree, timeout=900)
    summary = out.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, out[-3000:]


def _copy_if_absent(source, target):
    if not Path(target).exists():
        shutil.copy2(source, target)


SERVE = """
if __name__ == "__main__":
    from transformers.cli.transformers import main

    sys.argv = ["transformers", "serve", sys.argv[1], "--host", "127.0.0.1", "--port", sys.argv[2], "--device", "cpu"]
    main()
"""


def test_transformers_serve_answers_the_openai_client(tree, folders, media_dir, tmp_path, package_answer):
    import openai

    folder = folders["mistral"]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = run_in_tree(tree, SERVE, folder, port, cwd=tmp_path, wait=False)
    try:
        printed = lambda: server.stdout.read() if server.poll() is not None else ""  # noqa: E731  (a pipe: read once it ended)
        wait_until_answering(server, f"http://127.0.0.1:{port}", 180, printed)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", timeout=180, max_retries=0)
        video = {"type": "video_url", "video_url": {"url": str(media_dir / "sample_demo_1.mp4")}}
        response = client.chat.completions.create(
            model=str(folder),
            messages=[{"role": "user", "content": [video, {"type": "text", "text": QUESTION}]}],
            max_tokens=GREEDY["max_new_tokens"],
            # the server samples 32 frames unless told; the model's own count gives the package's answer
            extra_body={"chat_template_kwargs": {"num_frames": _num_frames(folder)}},
        )
        assert response.choices[0].message.content == package_answer
    finally:
        stop_by_pid(server)
        server.stdout.close()


def _num_frames(folder: Path) -> int:
    return json.loads((folder / "config.json").read_text())["num_frames"]
