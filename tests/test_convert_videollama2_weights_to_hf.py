"""The converter: released-layout checkpoint -> self-contained transformers-5 folder.

Every fixture variant is converted once (module-scoped cache) with `--vision-tower fixture/vision_tower` and
`--verify`, then checked against the fixture's reference logits and greedy ids, bit for bit against the source
tensors, for a valid deterministic safetensors layout, and for loading with remote code in a fresh interpreter
that cannot import `videollama2_hf`. Base-style (projector-only) sources, Hub downloads and Hub uploads, failures
and the CLI are covered too.

Network: only the network boundary is mocked — `huggingface_hub.HfApi` and `huggingface_hub.snapshot_download`
are replaced by fakes that serve / record local files. Everything else (safetensors, torch, transformers) is real.
"""

import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import huggingface_hub
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForImageTextToText
from videollama2_test_utils import (
    FIXTURE_VARIANTS,
    PRESET_NAMES,
    expanded_ids,
    first_low_margin_step,
    run_without_the_package,
)

import videollama2_hf  # noqa: F401  (registers the Auto classes)
from videollama2_hf import cli, converted_folder, hub, safetensors_copy
from videollama2_hf.configuration_videollama2 import VideoLlama2Config
from videollama2_hf.convert_videollama2_weights_to_hf import convert_videollama2_checkpoint
from videollama2_hf.modeling_videollama2 import VideoLlama2ForConditionalGeneration
from videollama2_hf.original_layout import (
    TOKENIZER_FILES,
    convert_original_key,
)
from videollama2_hf.safetensors_copy import read_safetensors_header


# What a converted folder holds (besides the weight shards): config + remote code, generation defaults, processor,
# tokenizer, chat template and model card.
METADATA_FILES = {
    "config.json",
    "configuration_videollama2.py",
    "modeling_videollama2.py",
    "generation_config.json",
    "processor_config.json",
    "processing_videollama2.py",
    "image_processing_videollama2.py",
    "video_processing_videollama2.py",
    "video_decoding_videollama2.py",
    "media_sources_videollama2.py",
    "token_counts_videollama2.py",
    "pipeline_videollama2.py",
    # the model and processor code also reads audio (audio-visual checkpoints), so every folder carries that code
    "modeling_videollama2_audio.py",
    "feature_extraction_videollama2.py",
    "audio_decoding_videollama2.py",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "README.md",
    "model.safetensors.index.json",
}

try:  # the package registers itself on import; register here only if it does not (guarded against doubles)
    AutoConfig.register("videollama2", VideoLlama2Config)
    AutoModelForImageTextToText.register(VideoLlama2Config, VideoLlama2ForConditionalGeneration)
except ValueError:
    pass


# ---------------------------------------------------------------------------------------------------------------------
# Fixtures: every variant converted once
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("convert")


@pytest.fixture(scope="module")
def converted(fixtures_dir, workdir):
    """variant -> (output folder, ConversionResult); each variant is converted (with verify) on first use."""
    cache = {}

    def get(variant):
        if variant not in cache:
            out = workdir / f"{variant}-hf"
            result = convert_videollama2_checkpoint(
                fixtures_dir / variant / "original_checkpoint",
                out,
                vision_tower=fixtures_dir / variant / "vision_tower",
                verify=True,
                progress=False,
            )
            cache[variant] = (out, result)
        return cache[variant]

    return get


def _source_dir(fixtures_dir, variant):
    return fixtures_dir / variant / "original_checkpoint"


def _copy_checkpoint(fixtures_dir, variant, destination):
    shutil.copytree(_source_dir(fixtures_dir, variant), destination)
    for path in destination.iterdir():
        path.chmod(0o644)  # the fixtures are read-only
    return destination


def _no_leftovers(parent: Path, name: str):
    return not (parent / name).exists() and not [p for p in parent.iterdir() if p.name.startswith(f".{name}.")]


# ---------------------------------------------------------------------------------------------------------------------
# Parity of the converted folder with the original implementation's references
# ---------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def loaded(converted, fixtures_dir):
    cache = {}

    def get(variant):
        if variant not in cache:
            out, _ = converted(variant)
            model = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32).eval()
            reference = load_file(fixtures_dir / variant / "reference.safetensors")
            meta = json.loads((fixtures_dir / variant / "reference.json").read_text())
            cache[variant] = (model, reference, meta)
        return cache[variant]

    return get


def _inputs(model, reference, meta, case):
    info = meta["cases"][case]
    token_id = model.config.video_token_id if case == "video" else model.config.image_token_id
    ids = expanded_ids(info, case, token_id)
    pixels = reference[f"{case}.pixel_values"]
    media = {"pixel_values_videos": pixels[None]} if case == "video" else {"pixel_values": pixels}
    return torch.tensor([ids]), media


@pytest.mark.parametrize("case", ["video", "image"])
@pytest.mark.parametrize("variant", FIXTURE_VARIANTS)
def test_converted_folder_reproduces_reference_logits_and_greedy_ids(loaded, variant, case):
    model, reference, meta = loaded(variant)
    input_ids, media = _inputs(model, reference, meta, case)
    assert model.config.get_num_visual_tokens() == meta["cases"][case]["num_visual_tokens"]
    with torch.inference_mode():
        logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **media).logits
    assert list(logits.shape) == meta["cases"][case]["logits_shape"]
    expected = reference[f"{case}.logits_last"][0]
    tolerance = 1e-4 * expected.abs().clamp(min=1)
    assert ((logits[0, -1] - expected).abs() <= tolerance).all(), (logits[0, -1] - expected).abs().max()

    # generation_config.json written by the converter = the original's greedy decoding (Qwen2: repetition penalty)
    with torch.inference_mode():
        generated = model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=16, **media
        )[0, input_ids.shape[1] :].tolist()
    expected_ids = reference[f"{case}.generate_ids"][0].tolist()
    margins = meta["cases"][case]["generate_step_margins"]
    exact = first_low_margin_step(margins)
    assert generated[:exact] == expected_ids[:exact]


@pytest.mark.parametrize("variant", FIXTURE_VARIANTS)
def test_verify_passes_and_reports_exact_copy(converted, variant):
    out, result = converted(variant)
    report = result.verification
    assert report["ok"], report
    assert report["max_abs_diff"] == 0.0
    assert report["mismatched"] == report["missing_keys"] == report["unexpected_keys"] == []
    assert report["tensors_compared"] == result.num_tensors
    assert report["forward_finite"]
    assert report["dtype"] == "bfloat16"


@pytest.mark.parametrize("variant", FIXTURE_VARIANTS)
def test_tensors_bit_identical_and_layout_valid(converted, fixtures_dir, variant):
    out, result = converted(variant)
    source_dir = _source_dir(fixtures_dir, variant)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    weight_map = index["weight_map"]
    source_shards = sorted(source_dir.glob("*.safetensors"))
    # one output shard per source shard, same count of tensors
    assert sorted(set(weight_map.values())) == result.shards
    assert len(result.shards) == len(source_shards)
    total = 0
    for source_shard, output_name in zip(source_shards, result.shards):
        with safe_open(source_shard, "pt") as source, safe_open(out / output_name, "pt") as output:
            source_keys = list(source.keys())
            assert sorted(convert_original_key(key) for key in source_keys) == sorted(output.keys())
            for key in source_keys:
                name = convert_original_key(key)
                assert weight_map[name] == output_name
                a, b = source.get_tensor(key), output.get_tensor(name)
                assert a.dtype == b.dtype == torch.bfloat16
                assert torch.equal(a.view(torch.int16), b.view(torch.int16)), name  # bit for bit
                total += a.numel() * a.element_size()
        # header: valid length prefix, keys sorted (deterministic), space padding to 8 bytes, offsets from data start
        raw = (out / output_name).read_bytes()
        (length,) = struct.unpack("<Q", raw[:8])
        assert length % 8 == 0 and raw[8 + length - 1 : 8 + length].strip(b" ") in (b"}", b"")
        # data placed at the source's position within a 4 KiB page (fast kernel copy)
        assert (8 + length) % 4096 == read_safetensors_header(source_shard).data_start % 4096
        header = json.loads(raw[8 : 8 + length])
        names = [name for name in header if name != "__metadata__"]
        assert names == sorted(names) and header["__metadata__"] == {"format": "pt"}
        assert (
            max(info["data_offsets"][1] for name, info in header.items() if name != "__metadata__")
            == len(raw) - 8 - length
        )
    assert index["metadata"]["total_size"] == total == result.total_bytes
    assert weight_map == dict(sorted(weight_map.items()))


def test_output_files_config_and_generation_defaults(converted, fixtures_dir):
    for variant, ids, eos, pad, template_marker in (
        ("mistral_stc_f8", (32000, 32001), 2, 2, "[INST]"),
        ("qwen2_siglip_stcv35_f16", (151646, 151647), [151645, 151643], 151643, "<|im_start|>"),
    ):
        out, result = converted(variant)
        files = {path.name for path in out.iterdir()}
        assert files == METADATA_FILES | set(result.shards)
        config = json.loads((out / "config.json").read_text())
        assert (config["image_token_id"], config["video_token_id"]) == ids == tuple(result.token_ids.values())
        assert config["auto_map"] == {
            "AutoConfig": "configuration_videollama2.VideoLlama2Config",
            "AutoModelForImageTextToText": "modeling_videollama2.VideoLlama2ForConditionalGeneration",
            "AutoModel": "modeling_videollama2.VideoLlama2Model",
        }
        assert config["custom_pipelines"]["visual-question-answering"]["impl"] == (
            "pipeline_videollama2.VideoLlama2VisualQuestionAnsweringPipeline"
        )
        assert config["dtype"] == "bfloat16" and config["model_type"] == "videollama2"
        processor_config = json.loads((out / "processor_config.json").read_text())
        assert processor_config["auto_map"]["AutoProcessor"] == "processing_videollama2.VideoLlama2Processor"
        image_processor = processor_config["image_processor"]
        assert image_processor["image_processor_type"] == "VideoLlama2ImageProcessor"
        assert image_processor["auto_map"]["AutoImageProcessor"] == (
            "image_processing_videollama2.VideoLlama2ImageProcessor"
        )
        generation = json.loads((out / "generation_config.json").read_text())
        assert generation["do_sample"] is False
        assert generation["eos_token_id"] == eos and generation["pad_token_id"] == pad
        assert generation.get("repetition_penalty") == (1.05 if variant.startswith("qwen2") else None)
        assert template_marker in (out / "chat_template.jinja").read_text()
        card = (out / "README.md").read_text()
        assert "license: apache-2.0" in card and f"{config['num_frames']} frames" in card
        assert str(VideoLlama2Config.from_pretrained(out).get_num_visual_tokens()) in card
        assert "trust_remote_code=True" in card and "image-text-to-text" in card
        assert oct(out.stat().st_mode & 0o777) != oct(0o700)


# ---------------------------------------------------------------------------------------------------------------------
# Remote code: the folder loads in a fresh interpreter that cannot import videollama2_hf
# ---------------------------------------------------------------------------------------------------------------------
REMOTE_SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, sys

    try:
        unimportable = importlib.util.find_spec("videollama2_hf") is None
    except ModuleNotFoundError:
        unimportable = True
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder, ids, pixels, video = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
    from safetensors.torch import load_file
    pixel_values = load_file(pixels)["video.pixel_values"]
    model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    input_ids = torch.tensor([ids])
    out = model.generate(input_ids=input_ids, pixel_values_videos=pixel_values[None], max_new_tokens=4)
    text = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Hi"}]}], tokenize=False,
        add_generation_prompt=True,
    )
    from transformers import pipeline
    vqa = pipeline("visual-question-answering", model=folder, trust_remote_code=True, dtype=torch.float32)
    answer = vqa(video=video, question="What does the baby do?", max_new_tokens=2)
    processed = processor(text="<video>", videos=[video], return_tensors="pt")
    print(json.dumps({
        "unimportable": unimportable,
        "vqa": answer,
        "image_processor": type(processor.image_processor).__name__,
        "pixels_equal": bool(torch.equal(processed["pixel_values_videos"][0], pixel_values)),
        "loaded": "videollama2_hf" in sys.modules,
        "model_module": type(model).__module__,
        "processor": type(processor).__name__,
        "video_tokens": text.count("<video>"),
        "new_ids": out[0, input_ids.shape[1]:].tolist(),
    }))
    """
)


def test_remote_code_loads_without_the_package(converted, loaded, fixtures_dir, media_dir, tmp_path):
    variant = "mistral_stc_f8"
    out, _ = converted(variant)
    model, reference, meta = loaded(variant)
    input_ids, _ = _inputs(model, reference, meta, "video")
    report = run_without_the_package(
        REMOTE_SCRIPT,
        out,
        json.dumps(input_ids[0].tolist()),
        fixtures_dir / variant / "reference.safetensors",
        media_dir / "sample_demo_1.mp4",
        cwd=tmp_path,
    )
    assert report["unimportable"] and not report["loaded"]
    assert report["model_module"].startswith("transformers_modules.")
    assert report["processor"] == "VideoLlama2Processor" and report["video_tokens"] == 1
    # the remote-code processor keeps the original's PIL pixels; the removed VQA task works as a custom pipeline
    assert report["image_processor"] == "VideoLlama2ImageProcessor" and report["pixels_equal"]
    assert len(report["vqa"]) == 1 and isinstance(report["vqa"][0]["answer"], str)
    margins = meta["cases"]["video"]["generate_step_margins"]
    exact = min(4, first_low_margin_step(margins))
    assert report["new_ids"][:exact] == reference["video.generate_ids"][0, :exact].tolist()


# ---------------------------------------------------------------------------------------------------------------------
# Base (projector-only) checkpoints
# ---------------------------------------------------------------------------------------------------------------------
def _make_base_source(fixtures_dir, variant, root: Path):
    """Split a fixture chat checkpoint the way the Base releases are laid out: checkpoint = config.json +
    mm_projector.bin (torch.save, bf16); a tower repo holding an HF CLIPModel/SiglipModel-style safetensors
    (`vision_model.*` plus text-tower keys to drop); a language-model repo (`model.*`, `lm_head.weight`, 2 shards)."""
    source = _source_dir(fixtures_dir, variant)
    tensors = {}
    for shard in sorted(source.glob("*.safetensors")):
        tensors.update(load_file(shard))
    base, tower, lm = root / "base", root / "tower", root / "lm"
    for folder in (base, tower, lm):
        folder.mkdir(parents=True)
    config = json.loads((source / "config.json").read_text())
    config["tune_mm_mlp_adapter"] = True
    (base / "config.json").write_text(json.dumps(config))
    torch.save({k: v for k, v in tensors.items() if k.startswith("model.mm_projector.")}, base / "mm_projector.bin")

    prefix = "model.vision_tower.vision_tower."
    vision = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    text_tower = {
        "text_model.embeddings.token_embedding.weight": torch.randn(10, 4).to(torch.bfloat16),
        "logit_scale": torch.tensor(1.0),
    }
    if "siglip" in variant:
        text_tower["logit_bias"] = torch.tensor([0.5])
    else:
        text_tower["visual_projection.weight"] = torch.randn(4, 32).to(torch.bfloat16)
    save_file({**text_tower, **vision}, tower / "model.safetensors", metadata={"format": "pt"})
    for name in ("config.json", "preprocessor_config.json"):
        shutil.copy(fixtures_dir / variant / "vision_tower" / name, tower / name)

    language = {
        k: v for k, v in tensors.items() if k == "lm_head.weight" or not k.startswith(("model.vision", "model.mm_"))
    }
    keys = sorted(language)
    halves = {
        "model-00001-of-00002.safetensors": keys[: len(keys) // 2],
        "model-00002-of-00002.safetensors": keys[len(keys) // 2 :],
    }
    for name, part in halves.items():
        save_file({k: language[k] for k in part}, lm / name, metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: name for name, part in halves.items() for k in part}}
    (lm / "model.safetensors.index.json").write_text(json.dumps(index))
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy(source / name, lm / name)
    return base, tower, lm


@pytest.mark.parametrize("variant", ["mistral_stc_f8", "qwen2_siglip_stcv35_f16"])
def test_base_source_converts_to_the_chat_weights(converted, fixtures_dir, tmp_path, variant):
    chat_out, chat_result = converted(variant)
    base, tower, lm = _make_base_source(fixtures_dir, variant, tmp_path / "src")
    out = tmp_path / "base-hf"
    result = convert_videollama2_checkpoint(
        base, out, vision_tower=tower, language_model=lm, verify=True, progress=False
    )
    assert result.kind == "base" and result.verification["ok"], result.verification
    assert result.num_tensors == chat_result.num_tensors
    chat_map = json.loads((chat_out / "model.safetensors.index.json").read_text())["weight_map"]
    base_map = json.loads((out / "model.safetensors.index.json").read_text())["weight_map"]
    assert set(chat_map) == set(base_map)  # text-tower keys dropped, nothing missing
    for name in chat_map:
        with safe_open(chat_out / chat_map[name], "pt") as a, safe_open(out / base_map[name], "pt") as b:
            x, y = a.get_tensor(name), b.get_tensor(name)
            assert x.dtype == y.dtype and torch.equal(x, y), name
    assert json.loads((out / "config.json").read_text()) == json.loads((chat_out / "config.json").read_text())
    assert (out / "tokenizer.json").read_bytes() == (chat_out / "tokenizer.json").read_bytes()


# ---------------------------------------------------------------------------------------------------------------------
# Hub: download (mocked network) and push (mocked network)
# ---------------------------------------------------------------------------------------------------------------------
# Files of real repos a conversion must not download.
DECOYS = ["training_args.bin", "trainer_state.json", "consolidated.safetensors", "tf_model.h5", "flax_model.msgpack"]


class FakeHub:
    """Stands in for the Hub at the network boundary: serves local folders, records uploads."""

    def __init__(self, repos: dict[str, Path], with_upload_large_folder=False):
        self.repos, self.calls, self.committed = repos, [], {}
        hub = self

        class FakeHfApi:
            def __init__(self, token=None):
                hub.calls.append(("HfApi", {"token": token}))

            def list_repo_files(self, repo_id, revision=None, repo_type=None):
                hub.calls.append(("list_repo_files", {"repo_id": repo_id, "revision": revision}))
                return sorted(p.name for p in hub.repos[repo_id].iterdir()) + DECOYS

            def create_repo(self, repo_id, **kwargs):
                hub.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
                return f"https://huggingface.co/{repo_id}"

            def create_branch(self, repo_id, **kwargs):
                hub.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

            def upload_folder(self, **kwargs):
                hub.calls.append(("upload_folder", kwargs))
                hub.record(kwargs["folder_path"])

        if with_upload_large_folder:

            def upload_large_folder(self, **kwargs):
                hub.calls.append(("upload_large_folder", kwargs))
                hub.record(kwargs["folder_path"])

            FakeHfApi.upload_large_folder = upload_large_folder
        self.HfApi = FakeHfApi

    def record(self, folder):
        self.committed = {p.name: p.stat().st_size for p in Path(folder).iterdir()}

    def snapshot_download(self, repo_id, revision=None, allow_patterns=None, token=None, **kwargs):
        self.calls.append(("snapshot_download", {"repo_id": repo_id, "allow_patterns": sorted(allow_patterns)}))
        return str(self.repos[repo_id])

    def install(self, monkeypatch):
        monkeypatch.setattr(huggingface_hub, "HfApi", self.HfApi)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", self.snapshot_download)
        monkeypatch.setattr(hub, "_probe", lambda endpoint: None)  # the Hub is "reachable"

    def named(self, name):
        return [kwargs for call, kwargs in self.calls if call == name]


# A forward proxy on the loopback interface that answers every request itself: a network where the Hub is reachable
# through the proxy only.
PROXY_SCRIPT = textwrap.dedent(
    """
    import http.server

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Answer)
    print(server.server_port, flush=True)
    server.serve_forever()
    """
)
REACHABILITY_SCRIPT = (
    "from videollama2_hf import hub\n"
    "try:\n    hub._check_reachable('org/name'); print('reachable')\n"
    "except hub.HubUnreachableError as error:\n    print('unreachable:', error)"
)


def test_hub_reachability_follows_the_proxy_settings(tmp_path):
    """Behind a mandatory proxy the Hub is reachable when downloads would work (huggingface_hub's client takes the
    proxy from the environment), and unreachable without it: nothing resolves `hub.invalid` here."""
    proxy = subprocess.Popen([sys.executable, "-c", PROXY_SCRIPT], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proxy.stdout.readline())
        names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "HF_HUB_OFFLINE")
        environment = {key: value for key, value in os.environ.items() if key.upper() not in names}
        environment["HF_ENDPOINT"] = "http://hub.invalid"
        answers = {}
        for case, extra in (("proxy", {"HTTP_PROXY": f"http://127.0.0.1:{port}"}), ("direct", {})):
            result = subprocess.run(
                [sys.executable, "-c", REACHABILITY_SCRIPT],
                env={**environment, **extra},
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr[-2000:]
            answers[case] = result.stdout.strip().splitlines()[-1]
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
    assert answers["proxy"] == "reachable"
    assert answers["direct"].startswith("unreachable: Cannot reach the Hub at http://hub.invalid to get org/name")


def test_hub_source_downloads_only_needed_files(monkeypatch, fixtures_dir, tmp_path):
    variant = "mistral_stc_f8"
    hub = FakeHub({"DAMO-NLP-SG/VideoLLaMA2-7B": _source_dir(fixtures_dir, variant)})
    hub.install(monkeypatch)
    out = tmp_path / "out"
    result = convert_videollama2_checkpoint(
        "DAMO-NLP-SG/VideoLLaMA2-7B", out, vision_tower=fixtures_dir / variant / "vision_tower", progress=False
    )
    assert result.preset == "VideoLLaMA2-7B"  # detected from the repo id
    (download,) = hub.named("snapshot_download")  # nothing else downloaded (tower settings are local/preset)
    assert download["repo_id"] == "DAMO-NLP-SG/VideoLLaMA2-7B"
    assert download["allow_patterns"] == sorted(
        [
            "config.json",
            "model-00001-of-00003.safetensors",
            "model-00002-of-00003.safetensors",
            "model-00003-of-00003.safetensors",
            "model.safetensors.index.json",
            "special_tokens_map.json",
            "tokenizer.json",
            "tokenizer.model",
            "tokenizer_config.json",
        ]
    )
    assert "base_model: DAMO-NLP-SG/VideoLLaMA2-7B" in (out / "README.md").read_text()


def test_base_hub_source_downloads_tower_and_language_model(monkeypatch, converted, fixtures_dir, tmp_path):
    """A Base repo id alone: the tower comes from `mm_vision_tower`, the LLM from `_name_or_path` (mocked Hub)."""
    variant = "mistral_stc_f8"
    base, tower, lm = _make_base_source(fixtures_dir, variant, tmp_path / "src")
    config = json.loads((base / "config.json").read_text())
    config.update(mm_vision_tower="tiny/clip-tower", _name_or_path="tiny/mistral-instruct")
    (base / "config.json").write_text(json.dumps(config))
    hub = FakeHub({"me/VideoLLaMA2-tiny-Base": base, "tiny/clip-tower": tower, "tiny/mistral-instruct": lm})
    hub.install(monkeypatch)
    out = tmp_path / "out"
    result = convert_videollama2_checkpoint("me/VideoLLaMA2-tiny-Base", out, progress=False)
    assert result.kind == "base" and result.preset is None  # unknown tower: no released checkpoint matches
    downloads = {call["repo_id"]: call["allow_patterns"] for call in hub.named("snapshot_download")}
    assert downloads == {
        "me/VideoLLaMA2-tiny-Base": ["config.json", "mm_projector.bin"],
        "tiny/clip-tower": ["config.json", "model.safetensors", "preprocessor_config.json"],
        "tiny/mistral-instruct": sorted(
            [
                "model-00001-of-00002.safetensors",
                "model-00002-of-00002.safetensors",
                "model.safetensors.index.json",
                "special_tokens_map.json",
                "tokenizer.json",
                "tokenizer.model",
                "tokenizer_config.json",
            ]
        ),
    }
    chat_out, _ = converted(variant)
    chat_map = json.loads((chat_out / "model.safetensors.index.json").read_text())["weight_map"]
    base_map = json.loads((out / "model.safetensors.index.json").read_text())["weight_map"]
    assert set(chat_map) == set(base_map)
    for name in chat_map:
        with safe_open(chat_out / chat_map[name], "pt") as a, safe_open(out / base_map[name], "pt") as b:
            assert torch.equal(a.get_tensor(name), b.get_tensor(name)), name
    card = (out / "README.md").read_text()
    assert "`tiny/mistral-instruct`" in card and "`tiny/clip-tower`" in card


def test_chat_checkpoint_uses_preset_tower_without_downloads(monkeypatch, fixtures_dir, tmp_path):
    """Without --vision-tower, the preset's tower settings (real CLIP-L) are used and nothing is downloaded; the
    tiny fixture's weights then disagree with them, which is reported with the fix."""
    hub = FakeHub({})
    hub.install(monkeypatch)
    with pytest.raises(ValueError, match=r"vision hidden_size 1024 .* 32 in the weights.*--vision-tower"):
        convert_videollama2_checkpoint(_source_dir(fixtures_dir, "mistral_stc_f8"), tmp_path / "o", progress=False)
    assert hub.calls == []
    assert _no_leftovers(tmp_path, "o")


def test_push_to_hub_commits_the_folder(monkeypatch, fixtures_dir, tmp_path):
    variant = "mistral_stc_f8"
    hub = FakeHub({})
    hub.install(monkeypatch)
    out = tmp_path / "pushed"
    result = convert_videollama2_checkpoint(
        _source_dir(fixtures_dir, variant),
        out,
        vision_tower=fixtures_dir / variant / "vision_tower",
        push_to_hub="me/VideoLLaMA2-tiny-hf",
        private=True,
        revision="v1",
        commit_message="Convert tiny VideoLLaMA2",
        progress=False,
    )
    assert result.repo_url == "https://huggingface.co/me/VideoLLaMA2-tiny-hf"
    assert hub.named("create_repo") == [
        {"repo_id": "me/VideoLLaMA2-tiny-hf", "repo_type": "model", "private": True, "exist_ok": True}
    ]
    assert hub.named("create_branch") == [
        {"repo_id": "me/VideoLLaMA2-tiny-hf", "branch": "v1", "repo_type": "model", "exist_ok": True}
    ]
    (upload,) = hub.named("upload_folder")
    assert upload == {
        "repo_id": "me/VideoLLaMA2-tiny-hf",
        "folder_path": str(out),
        "repo_type": "model",
        "revision": "v1",
        "commit_message": "Convert tiny VideoLLaMA2",
    }
    expected = METADATA_FILES | {f"model-0000{i}-of-00003.safetensors" for i in (1, 2, 3)}
    assert set(hub.committed) == expected
    assert hub.committed == {name: (out / name).stat().st_size for name in expected}
    assert 'model_id = "me/VideoLLaMA2-tiny-hf"' in (out / "README.md").read_text()


def test_push_prefers_upload_large_folder_when_available_and_no_message(monkeypatch, tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    fake = FakeHub({}, with_upload_large_folder=True)
    fake.install(monkeypatch)
    hub.push_folder_to_hub(folder, "me/repo")
    assert fake.named("upload_large_folder") == [
        {"repo_id": "me/repo", "folder_path": str(folder), "repo_type": "model", "revision": None}
    ]
    assert fake.named("create_repo") == [
        {"repo_id": "me/repo", "repo_type": "model", "private": None, "exist_ok": True}
    ]
    hub.push_folder_to_hub(folder, "me/repo", commit_message="msg")  # a message needs upload_folder
    assert [kwargs["commit_message"] for kwargs in fake.named("upload_folder")] == ["msg"]
    assert fake.committed == {"config.json": 2}


# ---------------------------------------------------------------------------------------------------------------------
# Safety: atomic output, clear errors
# ---------------------------------------------------------------------------------------------------------------------
def test_truncated_shard_leaves_nothing(fixtures_dir, tmp_path):
    variant = "mistral_stc_f8"
    source = _copy_checkpoint(fixtures_dir, variant, tmp_path / "src")
    shard = source / "model-00003-of-00003.safetensors"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(ValueError, match=r"Truncated safetensors file .*model-00003-of-00003.*download it again"):
        convert_videollama2_checkpoint(
            source, tmp_path / "out", vision_tower=fixtures_dir / variant / "vision_tower", progress=False
        )
    assert _no_leftovers(tmp_path, "out")


def test_failure_while_copying_leaves_nothing(monkeypatch, fixtures_dir, tmp_path):
    """Ctrl-C (or a disk error) in the middle of the weight copy: no destination, no temporary folder."""
    variant = "mistral_stc_f8"
    calls = []
    real_copy = safetensors_copy.copy_bytes

    def interrupted(*args):
        calls.append(args)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_copy(*args)

    monkeypatch.setattr(safetensors_copy, "copy_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert_videollama2_checkpoint(
            _source_dir(fixtures_dir, variant),
            tmp_path / "out",
            vision_tower=fixtures_dir / variant / "vision_tower",
            progress=False,
        )
    assert len(calls) == 2
    assert _no_leftovers(tmp_path, "out")


def test_failed_metadata_step_stops_the_copy_and_leaves_nothing(monkeypatch, fixtures_dir, tmp_path):
    variant = "mistral_stc_f8"

    def broken(*args, **kwargs):
        raise RuntimeError("tokenizer exploded")

    monkeypatch.setattr(converted_folder, "convert_config", broken)
    with pytest.raises(RuntimeError, match="tokenizer exploded"):
        convert_videollama2_checkpoint(
            _source_dir(fixtures_dir, variant),
            tmp_path / "out",
            vision_tower=fixtures_dir / variant / "vision_tower",
            progress=False,
        )
    assert _no_leftovers(tmp_path, "out")


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_non_empty_destination_refused_then_earlier_conversion_overwritten(converted, fixtures_dir, tmp_path):
    variant = "mistral_stc_f8"
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    kwargs = {"vision_tower": fixtures_dir / variant / "vision_tower", "progress": False}
    with pytest.raises(FileExistsError, match="not empty; pass --overwrite"):
        convert_videollama2_checkpoint(_source_dir(fixtures_dir, variant), out, **kwargs)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()  # an empty folder is fine without --overwrite
    convert_videollama2_checkpoint(_source_dir(fixtures_dir, variant), empty, **kwargs)
    assert {p.name for p in empty.iterdir()} == {p.name for p in converted(variant)[0].iterdir()}
    (empty / "README.md").write_text("edited model card")  # a file a conversion writes: replaced
    (empty / "model-00009-of-00009.safetensors").write_bytes(b"stale shard of an older conversion")
    convert_videollama2_checkpoint(_source_dir(fixtures_dir, variant), empty, overwrite=True, **kwargs)
    replaced, reference = _tree(empty), _tree(converted(variant)[0])
    assert replaced.pop("README.md").startswith(b"---") and reference.pop("README.md")  # titled by folder name
    assert replaced == reference
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out"]


@pytest.mark.parametrize("target", ["folder", "cwd"])
def test_overwrite_never_deletes_files_a_conversion_did_not_write(
    converted, fixtures_dir, tmp_path, monkeypatch, target
):
    variant = "mistral_stc_f8"
    out = tmp_path / "project"
    (out / "src").mkdir(parents=True)
    (out / "notes.txt").write_text("my notes")
    (out / "src" / "app.py").write_text("print('hello')")
    before = _tree(out)
    if target == "cwd":
        monkeypatch.chdir(out)
    destination = Path(".") if target == "cwd" else out
    kwargs = {"vision_tower": fixtures_dir / variant / "vision_tower", "progress": False, "overwrite": True}
    with pytest.raises(FileExistsError, match=r"Refusing to overwrite .*notes\.txt, src/.*no conversion wrote"):
        convert_videollama2_checkpoint(_source_dir(fixtures_dir, variant), destination, **kwargs)
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project"]  # no temporary folder left either

    # an earlier conversion with one foreign file beside it is not replaced either, and says which file
    shutil.copytree(converted(variant)[0], tmp_path / "conversion")
    (tmp_path / "conversion" / "my_results.csv").write_text("a,b")
    with pytest.raises(FileExistsError, match=r"my_results\.csv"):
        convert_videollama2_checkpoint(_source_dir(fixtures_dir, variant), tmp_path / "conversion", **kwargs)
    assert (tmp_path / "conversion" / "my_results.csv").read_text() == "a,b"
    # the current working directory is never renamed away, even when it holds only an earlier conversion
    (tmp_path / "conversion" / "my_results.csv").unlink()
    monkeypatch.chdir(tmp_path / "conversion")
    with pytest.raises(FileExistsError, match="current working directory"):
        convert_videollama2_checkpoint(_source_dir(fixtures_dir, variant), Path("."), **kwargs)
    assert _tree(tmp_path / "conversion") == _tree(converted(variant)[0])  # untouched


def test_missing_shard_unknown_keys_and_not_videollama2(fixtures_dir, tmp_path):
    variant = "mistral_stc_f8"
    tower = fixtures_dir / variant / "vision_tower"
    source = _copy_checkpoint(fixtures_dir, variant, tmp_path / "missing")
    (source / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"Missing shard.*model-00002-of-00003\.safetensors.*download"):
        convert_videollama2_checkpoint(source, tmp_path / "o1", vision_tower=tower, progress=False)

    source = _copy_checkpoint(fixtures_dir, variant, tmp_path / "extra")
    save_file(
        {"model.depth_tower.encoder.weight": torch.zeros(2), "model.mm_projector_d.0.weight": torch.zeros(2)},
        source / "model-00004-of-00004.safetensors",
    )
    index = json.loads((source / "model.safetensors.index.json").read_text())
    index["weight_map"]["model.depth_tower.encoder.weight"] = "model-00004-of-00004.safetensors"
    (source / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ValueError, match=r"2 tensor\(s\).*no VideoLLaMA2 counterpart: model\.depth_tower"):
        convert_videollama2_checkpoint(source, tmp_path / "o2", vision_tower=tower, progress=False)

    source = _copy_checkpoint(fixtures_dir, variant, tmp_path / "llama")
    config = json.loads((source / "config.json").read_text())
    config["model_type"] = "llama"
    del config["mm_vision_tower"]
    (source / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="Not a VideoLLaMA2 checkpoint"):
        convert_videollama2_checkpoint(source, tmp_path / "o3", vision_tower=tower, progress=False)
    with pytest.raises(FileNotFoundError, match="neither an existing folder nor a Hub repo id"):
        convert_videollama2_checkpoint(tmp_path / "nowhere" / "x", tmp_path / "o4", progress=False)
    for name in ("o1", "o2", "o3", "o4"):
        assert _no_leftovers(tmp_path, name)


# ---------------------------------------------------------------------------------------------------------------------
# Presets, CLI, streaming writer
# ---------------------------------------------------------------------------------------------------------------------
def test_wrong_preset_family_is_refused(fixtures_dir, tmp_path):
    variant = "mistral_stc_f8"
    with pytest.raises(ValueError, match="Preset VideoLLaMA2.1-7B-16F is for a qwen2 checkpoint"):
        convert_videollama2_checkpoint(
            _source_dir(fixtures_dir, variant),
            tmp_path / "o",
            preset="VideoLLaMA2.1-7B-16F",
            vision_tower=fixtures_dir / variant / "vision_tower",
            progress=False,
        )


def test_cli_convert_list_presets_and_errors(converted, fixtures_dir, tmp_path, capsys):
    assert cli.main(["convert", "--list-presets"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in PRESET_NAMES)

    variant = "mistral_mlp2x_gelu"  # no released checkpoint has this connector: no preset, family defaults
    out = tmp_path / "cli-out"
    argv = ["convert", str(_source_dir(fixtures_dir, variant)), str(out), "--vision-tower"]
    argv += [str(fixtures_dir / variant / "vision_tower"), "--max-shard-size", "100KB", "-q"]
    assert cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["preset"] is None and summary["shards"] > 3  # re-sharded by size
    weight_map = json.loads((out / "model.safetensors.index.json").read_text())["weight_map"]
    assert len(set(weight_map.values())) == summary["shards"]
    for shard in set(weight_map.values()):
        header = read_safetensors_header(out / shard)
        assert len(header.tensors) == 1 or sum(end - start for *_, start, end in header.tensors.values()) <= 100_000
    reference = converted(variant)[0]
    reference_map = json.loads((reference / "model.safetensors.index.json").read_text())["weight_map"]
    assert set(weight_map) == set(reference_map)
    for name in list(weight_map)[:20]:
        with safe_open(out / weight_map[name], "pt") as a, safe_open(reference / reference_map[name], "pt") as b:
            assert torch.equal(a.get_tensor(name), b.get_tensor(name))

    assert cli.main(argv) == 1  # the destination is now non-empty
    error = capsys.readouterr().err
    last = error.strip().splitlines()[-1]  # one line, after the loading progress of the test's earlier steps
    assert last.startswith("videollama2-hf convert: error: ") and "is not empty" in last and "--overwrite" in last
