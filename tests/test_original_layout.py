"""The released layout in one place: presets (releases, towers, backbone families), config translation, the tower
lookup order, and the processor settings of a release written without torch (checked against the real classes)."""

import json

import pytest
import transformers
from videollama2_test_utils import PRESET_NAMES

from videollama2_hf import VideoLlama2Config, VideoLlama2VideoProcessor
from videollama2_hf.original_layout import (
    PRESETS_DIR,
    backbone_defaults,
    convert_config,
    detect_preset,
    get_preset,
    known_vision_tower,
    list_presets,
    load_chat_template,
    processor_settings,
    resolve_vision_tower,
)


def _original_config(preset: dict) -> dict:
    return {
        "model_type": preset["source_model_type"],
        "mm_vision_tower": preset["vision_tower"],
        "mm_projector_type": preset["projector_type"],
        "num_frames": preset["num_frames"],
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "num_hidden_layers": 1,
        # what marks the audio-visual release's config.json (a training path; the original never reads it)
        **({"mm_audio_tower": "work_dirs/audio_tower.bin"} if preset.get("audio_visual") else {}),
    }


def test_presets_cover_every_release_and_build_configs():
    presets = list_presets()
    assert set(presets) == PRESET_NAMES
    assert (PRESETS_DIR / "vision_towers").is_dir() and (PRESETS_DIR / "backbones").is_dir()
    tokens = {}
    for name, preset in presets.items():
        assert preset["source"] == f"DAMO-NLP-SG/{name}" and preset["kind"] == ("base" if "Base" in name else "chat")
        family = preset["backbone"]
        assert backbone_defaults(family)["chat_template"] == ("chatml" if family == "qwen2" else "mistral")
        generation = backbone_defaults(family)["generation"]
        assert generation["do_sample"] is False
        if family == "qwen2":
            assert generation["repetition_penalty"] == 1.05 and generation["eos_token_id"] == [151645, 151643]
            assert generation["pad_token_id"] == 151643
        else:
            assert generation["eos_token_id"] == generation["pad_token_id"] == 2
        original = _original_config(preset)
        tower = known_vision_tower(preset["vision_tower"])
        config = VideoLlama2Config(**convert_config(original, tower["config"], 1, 2, audio_token_id=3))
        tokens[name] = config.get_num_visual_tokens()
        kind = preset["kind"]
        assert detect_preset(preset["source"], original, kind)["name"] == name  # by repo id
        assert detect_preset("/models/some-folder", original, kind)["name"] == name  # by what config.json says
    assert tokens["VideoLLaMA2-7B"] == 845 and tokens["VideoLLaMA2-7B-16F"] == 1521
    assert tokens["VideoLLaMA2.1-7B-16F"] == tokens["VideoLLaMA2.1-7B-AV"] == 1352
    assert get_preset("videollama2-72b-base")["source_model_type"] == "qwen2"
    with pytest.raises(ValueError, match="Unknown preset"):
        get_preset("VideoLLaMA3")


def test_each_tower_is_described_once_and_found_by_folder_name():
    towers = {path.stem: json.loads(path.read_text()) for path in (PRESETS_DIR / "vision_towers").glob("*.json")}
    assert {tower["id"] for tower in towers.values()} == {preset["vision_tower"] for preset in list_presets().values()}
    clip = known_vision_tower("openai/clip-vit-large-patch14-336")
    assert known_vision_tower("/data/models/clip-vit-large-patch14-336") is clip  # a path recorded at training
    assert known_vision_tower("someone/other-tower") is None


@pytest.mark.parametrize("tower_type", ["clip_vision_model", "siglip_vision_model"])
def test_tower_pixel_defaults_are_the_transformers_classes_defaults(tower_type):
    """Where a tower's preprocessor_config.json is silent, the written video settings use its image processor
    class's defaults: checked against the class itself, so the table cannot drift from transformers."""
    config = {"vision_config": {"model_type": tower_type, "patch_size": 14}, "projector_type": "stc_connector"}
    settings = processor_settings({}, {**config, "num_frames": 8})
    tower_class = {"clip_vision_model": "CLIPImageProcessorPil", "siglip_vision_model": "SiglipImageProcessorPil"}
    defaults = getattr(transformers, tower_class[tower_type])()
    video = settings["video_processor"]
    image = settings["image_processor"]
    assert image == {key: value for key, value in video.items() if key != "num_frames"}  # one pixel pipeline
    for key in ("image_mean", "image_std"):
        assert list(video[key]) == list(getattr(defaults, key))
    assert video["do_center_crop"] == bool(defaults.do_center_crop)
    for key in ("do_resize", "resample", "do_rescale", "rescale_factor", "do_normalize", "do_convert_rgb"):
        assert getattr(VideoLlama2VideoProcessor(), key) == getattr(defaults, key), key


def test_tower_lookup_order(fixtures_dir, tmp_path):
    variant = fixtures_dir / "qwen2_siglip_stcv35_f16"
    original = json.loads((variant / "original_checkpoint" / "config.json").read_text())
    # 1. an explicit folder, 4. else the preset of the released tower the config names
    assert (
        resolve_vision_tower(original, vision_tower=variant / "vision_tower")["config"]["vision_config"]["image_size"]
        == 56
    )
    assert resolve_vision_tower(original)["config"]["image_size"] == 384
    # 2. a vision_tower/ folder inside the checkpoint wins over the presets
    (tmp_path / "vision_tower").symlink_to(variant / "vision_tower")
    assert resolve_vision_tower(original, checkpoint=tmp_path)["config"]["vision_config"]["image_size"] == 56
    # 3. mm_vision_tower naming a local folder
    local = {**original, "mm_vision_tower": str(variant / "vision_tower")}
    assert resolve_vision_tower(local)["id"] == str(variant / "vision_tower")
    with pytest.raises(ValueError, match="vision_tower="):
        resolve_vision_tower({"mm_vision_tower": "nobody/no-such-tower"}, local_files_only=True)


def test_chat_templates_per_family():
    assert load_chat_template("mixtral") == load_chat_template("mistral") == load_chat_template("llama")
    assert "<|im_start|>" in load_chat_template("qwen2")
    with pytest.raises(ValueError, match="No preset describes a 'gemma' language model"):
        load_chat_template("gemma")


def test_configs_that_are_not_releases_are_refused():
    with pytest.raises(ValueError, match="Not a VideoLLaMA2 checkpoint in the original layout"):
        convert_config({"model_type": "bert"}, {}, 0, 1)
