"""VideoLLaMA2 through every Auto class: with the package imported, and as Hub-style remote code in a process that
cannot import the package (`trust_remote_code=True`)."""

import contextlib
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageTextToText,
    AutoModelForMultimodalLM,
    AutoProcessor,
    AutoVideoProcessor,
)
from videollama2_test_utils import expanded_ids, reference_case

from videollama2_hf import (
    VideoLlama2Config,
    VideoLlama2ForConditionalGeneration,
    VideoLlama2Model,
    VideoLlama2Processor,
)
from videollama2_hf.original_checkpoint import load_original_processor
from videollama2_hf.remote_code import add_vqa_pipeline_to_folder


VARIANT = "qwen2_siglip_stcv35_f16"  # SigLIP tower + ChatML template: the least default path


@contextlib.contextmanager
def registered_for_auto_classes(registrations: dict):
    """`register_for_auto_class` for one save, then restored (the registration is process-global)."""
    missing = object()
    previous = {cls: cls.__dict__.get("_auto_class", missing) for cls in registrations}
    for cls, auto_class in registrations.items():
        cls.register_for_auto_class(auto_class)
    try:
        yield
    finally:
        for cls, value in previous.items():
            if value is missing:
                del cls._auto_class
            else:
                cls._auto_class = value


@pytest.fixture(scope="module")
def source(fixtures_dir):
    variant = fixtures_dir / VARIANT
    model = AutoModelForImageTextToText.from_pretrained(
        variant / "original_checkpoint", vision_tower=variant / "vision_tower", dtype=torch.float32
    ).eval()
    processor = load_original_processor(variant / "original_checkpoint", vision_tower=variant / "vision_tower")
    return model, processor


@pytest.fixture(scope="module")
def hub_folder(source, tmp_path_factory):
    """A Hub-style folder: HF-layout weights, processor, remote code (auto_map) and the VQA custom pipeline."""
    model, processor = source
    folder = tmp_path_factory.mktemp("hub") / "videollama2-tiny"
    video_processor_class = type(processor.video_processor)
    with registered_for_auto_classes(
        {
            VideoLlama2Config: "AutoConfig",
            VideoLlama2ForConditionalGeneration: "AutoModelForImageTextToText",
            VideoLlama2Processor: "AutoProcessor",
            type(processor.image_processor): "AutoImageProcessor",
            video_processor_class: "AutoVideoProcessor",
        }
    ):
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"]["AutoModel"] = "modeling_videollama2.VideoLlama2Model"  # as the converter declares it
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    add_vqa_pipeline_to_folder(folder)
    return folder


def test_registered_on_import():
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    assert CONFIG_MAPPING["videollama2"] is VideoLlama2Config
    for original_type in ("videollama2_mistral", "videollama2_mixtral", "videollama2_qwen2", "videollama2_llama"):
        assert original_type in CONFIG_MAPPING


def test_import_registers_in_a_fresh_interpreter_and_the_launcher_defers_it():
    """`import videollama2_hf` alone registers everything; the `videollama2-hf` launcher imports the package without
    torch (registration waits for the commands that load a model)."""
    check = (
        "import sys, {module}; from transformers.models.auto.configuration_auto import CONFIG_MAPPING; "
        "print('videollama2' in CONFIG_MAPPING, 'videollama2_mistral' in CONFIG_MAPPING)"
    )
    result = subprocess.run(
        [sys.executable, "-c", check.format(module="videollama2_hf")], capture_output=True, text=True, timeout=300
    )
    assert result.stdout.split() == ["True", "True"], result.stderr
    launcher = (
        "import sys, videollama2_hf_cli; sys.argv = ['videollama2-hf', 'convert', '--list-presets']; "
        "code = videollama2_hf_cli.main(); print(code, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", launcher], capture_output=True, text=True, timeout=300)
    assert result.stdout.split()[-3:] == ["0", "False", "False"], result.stderr


def test_folder_layout(hub_folder):
    names = {path.name for path in hub_folder.iterdir()}
    for required in (
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "processor_config.json",
        "tokenizer.json",
        "chat_template.jinja",
        "configuration_videollama2.py",
        "modeling_videollama2.py",
        "processing_videollama2.py",
        "video_processing_videollama2.py",
        "video_decoding_videollama2.py",
        "pipeline_videollama2.py",
    ):
        assert required in names, required
    assert "original_checkpoint.py" not in names  # the original-layout loader stays in the package
    config = json.loads((hub_folder / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_videollama2.VideoLlama2Config",
        "AutoModel": "modeling_videollama2.VideoLlama2Model",
        "AutoModelForImageTextToText": "modeling_videollama2.VideoLlama2ForConditionalGeneration",
    }


def test_every_auto_class_with_the_package(hub_folder, source):
    model, processor = source
    assert type(AutoConfig.from_pretrained(hub_folder)) is VideoLlama2Config
    assert type(AutoModel.from_pretrained(hub_folder)) is VideoLlama2Model
    for auto_class in (AutoModelForImageTextToText, AutoModelForMultimodalLM):
        assert type(auto_class.from_pretrained(hub_folder)) is VideoLlama2ForConditionalGeneration
    loaded = AutoProcessor.from_pretrained(hub_folder)
    assert type(loaded) is VideoLlama2Processor
    # standalone too, the image processor is the original's PIL pipeline, whatever backend is asked for
    for backend in (None, "pil", "torchvision"):
        assert type(AutoImageProcessor.from_pretrained(hub_folder, backend=backend)) is type(processor.image_processor)
    assert type(AutoVideoProcessor.from_pretrained(hub_folder)) is type(processor.video_processor)
    assert loaded.chat_template == processor.chat_template


def _inputs(fixtures_dir, config):
    case = reference_case(fixtures_dir, VARIANT, "video")
    ids = torch.tensor([expanded_ids(case, "video", config.video_token_id)])
    pixels = torch.randn(1, config.num_frames, 3, 56, 56, generator=torch.Generator().manual_seed(0))
    return ids, pixels


REMOTE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.modules["videollama2_hf"] = None  # this process cannot import the package
    import torch
    from transformers import (AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageTextToText,
                              AutoProcessor, AutoVideoProcessor, pipeline)

    folder, inputs_path, image = sys.argv[1:4]
    report = {}
    try:
        AutoConfig.from_pretrained(folder)
    except ValueError as error:
        report["without_trust"] = "trust_remote_code" in str(error)
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    report["config"] = type(config).__module__ + "." + type(config).__name__
    base = AutoModel.from_pretrained(folder, trust_remote_code=True)
    report["base"] = type(base).__name__
    model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True).eval()
    report["model"] = type(model).__module__ + "." + type(model).__name__
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    report["processor"] = type(processor).__name__
    image_processor = AutoImageProcessor.from_pretrained(folder, trust_remote_code=True)
    report["image_processor"] = type(image_processor).__name__
    report["video_processor"] = type(AutoVideoProcessor.from_pretrained(folder, trust_remote_code=True)).__name__
    inputs = torch.load(inputs_path)
    with torch.no_grad():
        logits = model(input_ids=inputs["ids"], pixel_values_videos=inputs["pixels"]).logits
    torch.save(logits, inputs_path + ".logits")
    messages = [{"role": "user", "content": [{"type": "image", "path": image}, {"type": "text", "text": "What?"}]}]
    greedy = {"do_sample": False, "max_new_tokens": 3, "min_new_tokens": 3}
    chat = pipeline("image-text-to-text", model=folder, trust_remote_code=True)
    report["chat"] = chat(text=messages, generate_kwargs=greedy, return_full_text=False)[0]["generated_text"]
    vqa = pipeline("visual-question-answering", model=folder, trust_remote_code=True)
    report["vqa_class"] = type(vqa).__name__
    report["vqa"] = vqa(image=image, question="What?", generate_kwargs=greedy)
    print("REPORT " + json.dumps(report))
    """
)


def test_remote_code_without_the_package(hub_folder, source, fixtures_dir, media_dir, tmp_path):
    model, _ = source
    ids, pixels = _inputs(fixtures_dir, model.config)
    inputs_path = tmp_path / "inputs.pt"
    torch.save({"ids": ids, "pixels": pixels}, inputs_path)
    image = str(media_dir / "extreme_ironing.jpg")
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_SCRIPT, str(hub_folder), str(inputs_path), image],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = [line for line in result.stdout.splitlines() if "REPORT " in line]  # after the [y/N] prompt's text
    assert lines, result.stdout[-2000:] + result.stderr[-2000:]
    report = json.loads(lines[-1].split("REPORT ", 1)[1])
    assert report["without_trust"] is True
    assert report["config"].startswith("transformers_modules.") and report["config"].endswith(".VideoLlama2Config")
    assert report["model"].endswith(".VideoLlama2ForConditionalGeneration")
    assert report["model"].startswith("transformers_modules.")
    assert report["base"] == "VideoLlama2Model"
    assert report["processor"] == "VideoLlama2Processor"
    assert report["image_processor"] == "VideoLlama2ImageProcessor"
    assert report["video_processor"] == "VideoLlama2VideoProcessor"
    assert report["vqa_class"] == "VideoLlama2VisualQuestionAnsweringPipeline"
    assert report["vqa"] == [{"answer": report["chat"].strip()}]
    with torch.no_grad():
        expected = model(input_ids=ids, pixel_values_videos=pixels).logits
    assert torch.equal(torch.load(str(inputs_path) + ".logits"), expected)


# A fine-tune's journey: loaded with the package, saved, then loaded (and saved, and loaded again) where the package
# is not installed, as from the Hub.
RESAVE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, pipeline

    folder, again, video = sys.argv[1:4]
    model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    report = {"model": type(model).__module__, "processor": type(processor).__name__}
    if "custom_pipelines" in json.loads(open(f"{folder}/config.json").read()):
        vqa = pipeline("visual-question-answering", model=folder, trust_remote_code=True, dtype=torch.float32)
        report["vqa"] = vqa(video=video, question="What?", max_new_tokens=2)
    model.save_pretrained(again)
    processor.save_pretrained(again)
    reloaded = AutoModelForImageTextToText.from_pretrained(again, trust_remote_code=True, dtype=torch.float32)
    report["reloaded"] = type(reloaded).__name__
    report["same_weights"] = all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                                      reloaded.state_dict().values()))
    report["reloaded_processor"] = type(AutoProcessor.from_pretrained(again, trust_remote_code=True)).__name__
    print(json.dumps(report))
    """
)


def _code_named_by(folder) -> set[str]:
    """The module files the JSON files of a saved folder point to (auto_map entries, custom pipelines)."""
    named = set()

    def visit(value):
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("auto_map", "custom_pipelines"):
                    entries = item.values() if key == "auto_map" else [entry["impl"] for entry in item.values()]
                    named.update(entry.split(".")[0] + ".py" for entry in entries)
                else:
                    visit(item)

    for path in folder.glob("*.json"):
        visit(json.loads(path.read_text()))
    return named


@pytest.mark.parametrize("layout", ["converted", "release"])
def test_saved_folder_carries_the_code_its_config_names(layout, fixtures_dir, media_dir, tmp_path):
    """`save_pretrained` of a loaded model and processor writes a folder that loads with transformers alone: every
    module its config files name is in it (transformers copies those of the classes registered for an Auto class,
    the config adds its pipeline's), and a re-save without the package keeps that true."""
    from videollama2_test_utils import original_folder, run_without_the_package

    from videollama2_hf.convert_videollama2_weights_to_hf import convert_videollama2_checkpoint

    variant = fixtures_dir / "mistral_stc_f8"
    if layout == "converted":
        source = tmp_path / "converted"
        convert_videollama2_checkpoint(
            variant / "original_checkpoint", source, vision_tower=variant / "vision_tower", progress=False
        )
    else:
        source = original_folder(fixtures_dir, "mistral_stc_f8", tmp_path / "release")
    saved = tmp_path / "saved"
    AutoModelForImageTextToText.from_pretrained(source).save_pretrained(saved)
    if layout == "converted":
        AutoProcessor.from_pretrained(source).save_pretrained(saved)
    else:  # a release has no processor files: its processor is built from its tokenizer, tower and config
        from videollama2_hf.original_checkpoint import load_original_processor

        load_original_processor(source).save_pretrained(saved)
    named = _code_named_by(saved)
    assert {"configuration_videollama2.py", "modeling_videollama2.py", "processing_videollama2.py"} <= named
    assert named <= {path.name for path in saved.glob("*.py")}
    report = run_without_the_package(
        RESAVE_SCRIPT, saved, tmp_path / "again", media_dir / "sample_demo_1.mp4", cwd=tmp_path
    )
    assert report["model"].startswith("transformers_modules.") and report["processor"] == "VideoLlama2Processor"
    assert report["reloaded"] == "VideoLlama2ForConditionalGeneration" and report["same_weights"]
    assert report["reloaded_processor"] == "VideoLlama2Processor"
    assert ("vqa" in report) == (layout == "converted")  # the converter declares the VQA pipeline
    assert _code_named_by(tmp_path / "again") <= {path.name for path in (tmp_path / "again").glob("*.py")}
