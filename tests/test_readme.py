"""The ```python examples of README.md and docs/videollama2.md run, on tiny checkpoints (conventions for writing them:
tests/readme_examples.py)."""

import re

import pytest
from readme_examples import DOCUMENTS, REPO_ROOT, SKIP_MARK, make_scratch, python_blocks, run_example


BLOCKS = [
    pytest.param(document, line, code, id=f"{document}:{line}")
    for document in DOCUMENTS
    for line, code, skipped in python_blocks(document)
    if not skipped
]


@pytest.fixture(scope="module")
def scratch(fixtures_dir, media_dir, tmp_path_factory):
    return make_scratch(fixtures_dir, media_dir, tmp_path_factory.mktemp("readme"))


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
    monkeypatch.chdir(scratch)
    run_example(document, line, code, scratch)
    capsys.readouterr()
