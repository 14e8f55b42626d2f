# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""The code a saved VideoLLaMA2 folder carries, so that it loads with transformers alone (`trust_remote_code=True`).

A folder names its classes in `auto_map` entries ("file.Class") and holds those files plus what they import
relatively. This module is the one place that lists them; it imports no tensor library, so the converter can write
a folder without torch.
"""

import json
import shutil
from pathlib import Path


PACKAGE_DIR = Path(__file__).resolve().parent

MODEL_AUTO_MAP = {
    "AutoConfig": "configuration_videollama2.VideoLlama2Config",
    "AutoModel": "modeling_videollama2.VideoLlama2Model",
    "AutoModelForImageTextToText": "modeling_videollama2.VideoLlama2ForConditionalGeneration",
}
PROCESSOR_AUTO_MAP = {"AutoProcessor": "processing_videollama2.VideoLlama2Processor"}
# The Auto class of each part of a processor, for `save_pretrained` to write its `auto_map` entry and copy its code.
AUTO_CLASSES_OF_PROCESSOR_PARTS = {
    "image_processor": "AutoImageProcessor",
    "video_processor": "AutoVideoProcessor",
    "feature_extractor": "AutoFeatureExtractor",
}
IMAGE_PROCESSOR_AUTO_MAP = {
    **PROCESSOR_AUTO_MAP,
    "AutoImageProcessor": "image_processing_videollama2.VideoLlama2ImageProcessor",
}
VIDEO_PROCESSOR_AUTO_MAP = {
    **PROCESSOR_AUTO_MAP,
    "AutoVideoProcessor": "video_processing_videollama2.VideoLlama2VideoProcessor",
}
FEATURE_EXTRACTOR_AUTO_MAP = {  # audio-visual checkpoints only
    **PROCESSOR_AUTO_MAP,
    "AutoFeatureExtractor": "feature_extraction_videollama2.VideoLlama2FeatureExtractor",
}

# transformers 5 removed the `visual-question-answering` task; a folder provides it as a custom pipeline.
VQA_TASK = "visual-question-answering"
VQA_PIPELINE_ENTRY = {
    "impl": "pipeline_videollama2.VideoLlama2VisualQuestionAnsweringPipeline",
    "pt": ["AutoModelForImageTextToText"],
    "type": "multimodal",
}


def _module_files(auto_maps: list[dict]) -> list[Path]:
    """The package files defining the classes of `auto_maps`, and every file they import relatively."""
    from transformers.dynamic_module_utils import get_relative_import_files

    references = [reference for auto_map in auto_maps for reference in auto_map.values()]
    files = {PACKAGE_DIR / f"{reference.split('.')[0]}.py" for reference in references}
    for file in list(files):
        files.update(Path(path) for path in get_relative_import_files(file))
    return sorted(files)


def remote_code_files() -> frozenset[str]:
    """Every file name `copy_remote_code` may write."""
    everything = [MODEL_AUTO_MAP, IMAGE_PROCESSOR_AUTO_MAP, VIDEO_PROCESSOR_AUTO_MAP, FEATURE_EXTRACTOR_AUTO_MAP]
    return frozenset(path.name for path in _module_files([*everything, {VQA_TASK: VQA_PIPELINE_ENTRY["impl"]}]))


def copy_remote_code(folder, audio: bool = False) -> list[str]:
    """Copy the model, processor and pipeline code (with `audio`, the audio feature extractor's too) into `folder`;
    returns the file names."""
    auto_maps = [MODEL_AUTO_MAP, IMAGE_PROCESSOR_AUTO_MAP, VIDEO_PROCESSOR_AUTO_MAP]
    auto_maps += [FEATURE_EXTRACTOR_AUTO_MAP] if audio else []
    files = _module_files([*auto_maps, {VQA_TASK: VQA_PIPELINE_ENTRY["impl"]}])
    for file in files:
        shutil.copyfile(file, Path(folder) / file.name)
    return [file.name for file in files]


def add_vqa_pipeline_to_folder(folder) -> Path:
    """Ship the visual-question-answering pipeline with a saved model folder: copy `pipeline_videollama2.py` into it
    and declare it in `config.json["custom_pipelines"]`, after which `pipeline("visual-question-answering",
    model=folder, trust_remote_code=True)` works (also after uploading the folder to the Hub). Idempotent; returns the
    copied file."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{folder} has no config.json; save the model there first.")
    (source,) = _module_files([{VQA_TASK: VQA_PIPELINE_ENTRY["impl"]}])
    target = folder / source.name
    shutil.copyfile(source, target)
    config = json.loads(config_path.read_text())
    config.setdefault("custom_pipelines", {})[VQA_TASK] = dict(VQA_PIPELINE_ENTRY)
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return target


__all__ = [
    "AUTO_CLASSES_OF_PROCESSOR_PARTS",
    "FEATURE_EXTRACTOR_AUTO_MAP",
    "IMAGE_PROCESSOR_AUTO_MAP",
    "MODEL_AUTO_MAP",
    "PROCESSOR_AUTO_MAP",
    "VIDEO_PROCESSOR_AUTO_MAP",
    "add_vqa_pipeline_to_folder",
    "copy_remote_code",
    "remote_code_files",
]
