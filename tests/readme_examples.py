"""The ```python examples of README.md and docs/videollama2.md, and the scratch folder they run in.

Shared by tests/test_readme.py (pytest) and tests/runtime_smoke.py (runs with the runtime dependencies only), so
plain Python: no pytest here.

Conventions for writing those examples (so that they run unchanged for users and here):

* Every ```python block runs, in a fresh namespace, unless the line before its fence is an HTML comment containing
  `readme-test: skip` (for what needs a CUDA GPU, bitsandbytes or a Hub account), e.g.
  `<!-- readme-test: skip (needs a CUDA GPU) -->`.
* Blocks run in a scratch folder holding every file of the shared media folder by name (`sample_demo_1.mp4`,
  `extreme_ironing.jpg`, `desert.png`, ...) and two tiny checkpoints made by the converter: `VideoLLaMA2-7B-16F-hf/`
  (16 frames, Mistral, CLIP) and `VideoLLaMA2.1-7B-AV-hf/` (audio-visual). Refer to them by relative paths:
  `"sample_demo_1.mp4"`, `"./VideoLLaMA2-7B-16F-hf"`. Relative paths an example writes land in the scratch folder.
* A string literal naming a released repository, `"DAMO-NLP-SG/VideoLLaMA2..."`, is replaced by a tiny checkpoint in
  the original layout, so direct loading of the releases is exercised too.
* Examples print their results and bound generation (`max_new_tokens=...`).
"""

import os
import re
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = ["README.md", "docs/videollama2.md"]
SKIP_MARK = "readme-test: skip"
FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
RELEASE_ID = re.compile(r"""(["'])DAMO-NLP-SG/VideoLLaMA2[\w.\-]*\1""")
CONVERTED_NAME = "VideoLLaMA2-7B-16F-hf"
AUDIO_VISUAL_NAME = "VideoLLaMA2.1-7B-AV-hf"
RELEASE_NAME = "VideoLLaMA2-7B-16F"
VARIANT = "mistral_stc_f16"
AUDIO_VISUAL_VARIANT = "qwen2_siglip_av"


def python_blocks(document: str) -> list[tuple[int, str, bool]]:
    """(line, code, skipped) of every ```python block of `document`."""
    text = (REPO_ROOT / document).read_text()
    blocks = []
    for match in FENCE.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        blocks.append((line, match.group(1), SKIP_MARK in before))
    return blocks


def release_folder(fixtures_dir: Path, variant: str, destination: Path) -> Path:
    """`destination` holding a fixture's checkpoint in the released layout, its tiny tower under `vision_tower/`
    (files are symlinked)."""
    source = fixtures_dir / variant
    destination.mkdir(parents=True, exist_ok=True)
    for path in (source / "original_checkpoint").iterdir():
        os.symlink(path, destination / path.name)
    os.symlink(source / "vision_tower", destination / "vision_tower")
    return destination


def make_scratch(fixtures_dir: Path, media_dir: Path, root: Path) -> Path:
    """The media by name, two converted tiny checkpoints (video, audio-visual) and a release-layout copy
    (`RELEASE_NAME`/) in `root`."""
    from videollama2_hf.convert_videollama2_weights_to_hf import convert_videollama2_checkpoint

    for path in media_dir.iterdir():
        (root / path.name).symlink_to(path)
    for variant, name in ((VARIANT, CONVERTED_NAME), (AUDIO_VISUAL_VARIANT, AUDIO_VISUAL_NAME)):
        source = fixtures_dir / variant
        convert_videollama2_checkpoint(
            source / "original_checkpoint", root / name, vision_tower=source / "vision_tower", progress=False
        )
    release_folder(fixtures_dir, VARIANT, root / "releases" / RELEASE_NAME)
    return root


def run_example(document: str, line: int, code: str, root: Path) -> None:
    """Run one block in `root` with the release ids pointing at the local release-layout copy."""
    code = RELEASE_ID.sub(repr(str(root / "releases" / RELEASE_NAME)), code)
    namespace = {"__name__": "__main__"}
    exec(compile(code, f"{document}:{line}", "exec"), namespace)  # noqa: S102
