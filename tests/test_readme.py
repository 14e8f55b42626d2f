"""The ```python examples of README.md and docs/videollama2.md run, on tiny checkpoints.

Conventions for writing those examples (so that they run unchanged for users and here):

* Every ```python block runs, in a fresh namespace, unless the line before its fence is an HTML comment containing
  `readme-test: skip` (for what needs a CUDA GPU, bitsandbytes or a Hub account), e.g.
  `<!-- readme-test: skip (needs a CUDA GPU) -->`.
* Blocks run in a scratch folder holding every file of the shared media folder by name (`sample_demo_1.mp4`,
  `extreme_ironing.jpg`, `desert.png`, ...) and `VideoLLaMA2-7B-16F-hf/`, a tiny converted checkpoint made by the
  converter (16 frames, Mistral, CLIP). Refer to them by relative paths: `"sample_demo_1.mp4"`,
  `"./VideoLLaMA2-7B-16F-hf"`. Relative paths an example writes land in the scratch folder.
* A string literal naming a released repository, `"DAMO-NLP-SG/VideoLLaMA2..."`, is replaced by a tiny checkpoint in
  the original layout, so direct loading of the releases is exercised too.
* Examples print their results and bound generation (`max_new_tokens=...`).
"""

import re
from pathlib import Path

import pytest
from videollama2_test_utils import original_folder


REPO_ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "docs/videollama2.md"]
SKIP_MARK = "readme-test: skip"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
RELEASE_ID = re.compile(r"""(["'])DAMO-NLP-SG/VideoLLaMA2[\w.\-]*\1""")
CONVERTED_NAME = "VideoLLaMA2-7B-16F-hf"
VARIANT = "mistral_stc_f16"


def python_blocks(document: str) -> list[tuple[int, str, bool]]:
    """(line, code, skipped) of every ```python block of `document`."""
    text = (REPO_ROOT / document).read_text()
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        blocks.append((line, match.group(1), SKIP_MARK in before))
    return blocks


BLOCKS = [
    pytest.param(document, line, code, id=f"{document}:{line}")
    for document in DOCUMENTS
    for line, code, skipped in python_blocks(document)
    if not skipped
]


@pytest.fixture(scope="module")
def scratch(fixtures_dir, media_dir, tmp_path_factory):
    from videollama2_hf.convert_videollama2_weights_to_hf import convert_videollama2_checkpoint
    from videollama2_hf.pipeline_videollama2 import add_vqa_pipeline_to_folder

    root = tmp_path_factory.mktemp("readme")
    for path in media_dir.iterdir():
        (root / path.name).symlink_to(path)
    source = fixtures_dir / VARIANT
    convert_videollama2_checkpoint(
        source / "original_checkpoint", root / CONVERTED_NAME, vision_tower=source / "vision_tower", progress=False
    )
    if not (root / CONVERTED_NAME / "pipeline_videollama2.py").is_file():
        add_vqa_pipeline_to_folder(root / CONVERTED_NAME)
    original = original_folder(fixtures_dir, VARIANT, tmp_path_factory.mktemp("release") / "VideoLLaMA2-7B-16F")
    return root, original


def test_documents_have_examples():
    for document in DOCUMENTS:
        assert python_blocks(document), f"{document} has no ```python example"


def test_skipped_examples_say_why():
    for document in DOCUMENTS:
        text = (REPO_ROOT / document).read_text()
        for comment in re.findall(rf"<!--[^>]*{SKIP_MARK}[^>]*-->", text):
            assert "(" in comment, f"{document}: give the reason in parentheses: {comment}"


@pytest.mark.parametrize("document,line,code", BLOCKS)
def test_example_runs(document, line, code, scratch, monkeypatch, capsys):
    root, original = scratch
    monkeypatch.chdir(root)
    code = RELEASE_ID.sub(repr(str(original)), code)
    namespace = {"__name__": "__main__"}
    exec(compile(code, f"{document}:{line}", "exec"), namespace)  # noqa: S102
    capsys.readouterr()
