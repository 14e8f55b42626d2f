"""The converter on the audio-visual release layout (VideoLLaMA2.1-7B-AV), with the `qwen2_siglip_av` fixture.

The release keeps BEATs and the audio projector in its shards (plus side files `audio_tower.bin` and
`mm_projector_a.bin` the converter ignores) and BEATs' relative position bias once per layer, all aliases of the first
layer's table. The converted folder must hold the weights the key table gives (bit for bit, aliases dropped), the
`<audio>` tokenizer and the filterbank feature extractor, reproduce the original's logits for the three fixture
cases, load as remote code in an interpreter without the package, and be recognised by `--overwrite`.
"""

import json
import textwrap

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import AutoModelForImageTextToText, AutoProcessor
from videollama2_test_utils import (
    AV_VARIANT,
    assert_logits_close,
    audio_visual_model,
    audio_visual_processor,
    case_media,
    expanded_audio_visual_ids,
    run_without_the_package,
    stored_media,
)

import videollama2_hf  # noqa: F401  (registers the Auto classes)
from videollama2_hf import cli
from videollama2_hf.checkpoint_info import describe_checkpoint
from videollama2_hf.convert_videollama2_weights_to_hf import convert_videollama2_checkpoint
from videollama2_hf.original_layout import AUDIO_SHARED_TABLE_KEY


CASES = ["av", "audio", "video"]


@pytest.fixture(scope="module")
def conversion(fixtures_dir, tmp_path_factory):
    folder = fixtures_dir / AV_VARIANT
    out = tmp_path_factory.mktemp("convert-av") / "VideoLLaMA2.1-7B-AV-hf"
    result = convert_videollama2_checkpoint(
        folder / "original_checkpoint", out, vision_tower=folder / "vision_tower", verify=True, progress=False
    )
    return out, result


@pytest.fixture(scope="module")
def converted(conversion):
    """The converted folder's model and processor, loaded once."""
    out, _ = conversion
    model = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32).eval()
    return model, AutoProcessor.from_pretrained(out)


@pytest.fixture(scope="module")
def reference(fixtures_dir):
    folder = fixtures_dir / AV_VARIANT
    meta = json.loads((folder / "reference.json").read_text())
    return load_file(folder / "reference.safetensors"), meta["cases"]


def _source_tensors(fixtures_dir):
    tensors = {}
    for shard in sorted((fixtures_dir / AV_VARIANT / "original_checkpoint").glob("*.safetensors")):
        tensors.update(load_file(shard))
    return tensors


def test_verify_reports_an_exact_copy_with_the_audio_tower(conversion):
    out, result = conversion
    report = result.verification
    assert report["ok"] and report["max_abs_diff"] == 0.0, report
    assert report["mismatched"] == report["missing_keys"] == report["unexpected_keys"] == []
    assert report["tensors_compared"] == result.num_tensors
    config = json.loads((out / "config.json").read_text())
    assert config["audio_config"]["model_type"] == "videollama2_audio_encoder"
    assert config["audio_token_id"] == result.token_ids["audio_token_id"]


def test_weights_are_the_key_tables_bit_for_bit_and_the_aliases_are_dropped(conversion, fixtures_dir):
    out, _ = conversion
    converted = {}
    for shard in sorted(out.glob("*.safetensors")):
        with safe_open(shard, "pt") as weights:
            converted.update({name: weights.get_tensor(name) for name in weights.keys()})
    audio = {name: tensor for name, tensor in converted.items() if ".audio_" in name}
    assert any(name.startswith("model.audio_tower.") for name in audio)
    assert any(name.startswith("model.audio_projector.") for name in audio)
    # one relative-position table, shared by all layers; the release's per-layer copies are aliases, not written
    table = "model.audio_tower.encoder.relative_attention_bias.weight"
    assert [name for name in converted if "relative_attention_bias" in name] == [table]
    copies = [tensor for name, tensor in _source_tensors(fixtures_dir).items() if AUDIO_SHARED_TABLE_KEY.match(name)]
    assert len(copies) == 2 and all(torch.equal(converted[table], copy) for copy in copies)
    # the weight norm's two tensors keep the release's names in the file (transformers renames them when loading)
    assert {"model.audio_tower.encoder.pos_conv.weight_g", "model.audio_tower.encoder.pos_conv.weight_v"} <= set(audio)

    loaded = AutoModelForImageTextToText.from_pretrained(out, dtype=torch.float32)
    expected = audio_visual_model(fixtures_dir).state_dict()
    assert loaded.state_dict().keys() == expected.keys()
    assert all(torch.equal(tensor, expected[name]) for name, tensor in loaded.state_dict().items())


@pytest.mark.parametrize("name", CASES)
def test_converted_folder_reproduces_the_original(converted, reference, fixtures_dir, media_dir, name):
    """From the media files through the converted processor to the logits of the original audio-visual branch."""
    model, processor = converted
    tensors, cases = reference
    case = cases[name]
    media = {"type": "audio", "path": str(media_dir / case["media_file"])}
    if name != "audio":
        media = {"type": "video", "path": str(media_dir / case["media_file"])}
    messages = [{"role": "user", "content": [media, {"type": "text", "text": case["instruct"]}]}]
    inputs = processor.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True, load_audio_from_video=name == "av"
    )
    ids = expanded_audio_visual_ids(case, model.config.video_token_id, model.config.audio_token_id)
    assert inputs["input_ids"][0].tolist() == ids
    built = audio_visual_processor(fixtures_dir)(text=case["prompt"], **case_media(media_dir, case, name))
    for key in ("pixel_values_videos", "input_features"):
        assert (key in inputs) == (key in built)
        if key in built:
            assert torch.equal(inputs[key], built[key]), key
    # the model from the original's processor outputs, so that the comparison is the converted weights' alone
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), logits_to_keep=1, **stored_media(tensors, name)).logits[:, -1]
    assert_logits_close(logits, tensors[f"{name}.logits_last"], what="last logits")


REMOTE_SCRIPT = textwrap.dedent(
    """
    import json, sys

    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder, wav, video = sys.argv[1:4]
    model = AutoModelForImageTextToText.from_pretrained(folder, trust_remote_code=True, dtype=torch.float32)
    processor = AutoProcessor.from_pretrained(folder, trust_remote_code=True)
    report = {"loaded": "videollama2_hf" in sys.modules, "model_module": type(model).__module__,
              "feature_extractor": type(processor.feature_extractor).__module__}
    for name, item, from_video in (("audio", {"type": "audio", "path": wav}, False),
                                   ("av", {"type": "video", "path": video}, True)):
        messages = [{"role": "user", "content": [item, {"type": "text", "text": "What do you hear?"}]}]
        inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                               return_dict=True, load_audio_from_video=from_video)
        with torch.no_grad():
            logits = model(**inputs, logits_to_keep=1).logits[0, -1]
        report[name] = {"audio_tokens": int((inputs["input_ids"] == model.config.audio_token_id).sum()),
                        "features": list(inputs["input_features"].shape),
                        "finite": bool(torch.isfinite(logits).all()),
                        "logits": logits.topk(5).values.tolist()}
    print(json.dumps(report))
    """
)


def test_remote_code_hears_audio_without_the_package(conversion, converted, media_dir, tmp_path):
    out, _ = conversion
    wav, video = media_dir / "bird-twitter-car.wav", media_dir / "sample_demo_1.mp4"
    report = run_without_the_package(REMOTE_SCRIPT, out, wav, video, cwd=tmp_path)
    assert not report["loaded"]
    assert report["model_module"].startswith("transformers_modules.")
    assert report["feature_extractor"].startswith("transformers_modules.")
    # the same answers as the package's own classes on the same folder
    model, processor = converted
    for name, item, from_video in (
        ("audio", {"type": "audio", "path": str(wav)}, False),
        ("av", {"type": "video", "path": str(video)}, True),
    ):
        messages = [{"role": "user", "content": [item, {"type": "text", "text": "What do you hear?"}]}]
        inputs = processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, load_audio_from_video=from_video
        )
        with torch.no_grad():
            logits = model(**inputs, logits_to_keep=1).logits[0, -1]
        assert report[name]["audio_tokens"] == 1496
        assert report[name]["features"] == list(inputs["input_features"].shape)
        assert torch.allclose(torch.tensor(report[name]["logits"]), logits.topk(5).values, atol=1e-5, rtol=0)


def test_overwrite_recognises_an_audio_visual_conversion(conversion, fixtures_dir, tmp_path, capsys):
    """A second conversion over the first one replaces it (every file it holds is one a conversion writes)."""
    out, _ = conversion
    target = tmp_path / "again"
    folder = fixtures_dir / AV_VARIANT
    args = [str(folder / "original_checkpoint"), str(target), "--vision-tower", str(folder / "vision_tower")]
    assert cli.main(["convert", *args]) == 0
    (target / "README.md").write_text("edited")
    assert cli.main(["convert", *args, "--overwrite"]) == 0
    assert sorted(path.name for path in target.iterdir()) == sorted(path.name for path in out.iterdir())
    assert (target / "README.md").read_text() != "edited"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["again"]
    capsys.readouterr()
    assert cli.main(["info", str(target)]) == 0
    assert "tokens per audio         1496 (30 s of sound)" in capsys.readouterr().out


def test_info_counts_the_release_and_its_conversion_alike(conversion, fixtures_dir):
    """`info` on the release counts what the conversion keeps per component, and apart what it leaves behind."""
    out, _ = conversion
    release = describe_checkpoint(fixtures_dir / AV_VARIANT / "original_checkpoint")
    converted = describe_checkpoint(out)
    left_behind = release.parameters.pop("not converted")
    release_total, converted_total = release.parameters.pop("total"), converted.parameters.pop("total")
    assert release.parameters == converted.parameters and converted_total == release_total - left_behind
    assert release.parameters["audio tower"] > 0 and release.parameters["audio projector"] > 0
    unread = [
        tensor
        for name, tensor in _source_tensors(fixtures_dir).items()
        if name.startswith("model.audio_tower.predictor.")
        or (AUDIO_SHARED_TABLE_KEY.match(name) and ".layers.0." not in name)
    ]
    assert left_behind == sum(tensor.numel() for tensor in unread)
    assert release.tokens_per_audio == converted.tokens_per_audio == 1496
