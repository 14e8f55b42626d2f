"""transformers' own model, generation and config test suites (`ModelTesterMixin`, `GenerationTesterMixin`,
`ConfigTester`, imported unmodified from ../shared/hf-tests) on three tiny VideoLLaMA2 configurations:
CLIP + Mistral + `stc_connector`, SigLIP + Qwen2 + `stc_connector_v35`, and the latter with a BEATs audio tower
(VideoLLaMA2.1-AV).
"""

import unittest
import zlib
from unittest.mock import patch

import torch
from tests.generation.test_utils import GenerationTesterMixin
from tests.generation.test_utils import global_rng as generation_rng
from tests.test_configuration_common import ConfigTester
from tests.test_modeling_common import ModelTesterMixin, floats_tensor, global_rng, ids_tensor
from transformers import set_seed
from transformers.models.auto import modeling_auto
from videollama2_test_utils import TINY_AUDIO_CONFIG, TINY_AUDIO_FRAMES

from videollama2_hf import VideoLlama2Config, VideoLlama2ForConditionalGeneration, VideoLlama2Model


class VideoLlama2ModelTester:
    """Builds a tiny config and a batch whose prompts hold one image run and one video run (and, with `audio`, one
    audio run)."""

    def __init__(
        self,
        parent,
        text_model_type="mistral",
        vision_model_type="clip_vision_model",
        projector_type="stc_connector",
        num_frames=2,
        batch_size=2,
        text_length=7,
        image_token_id=3,
        video_token_id=4,
        audio=False,
        audio_token_id=5,
    ):
        self.parent = parent
        self.batch_size = batch_size
        self.is_training = True
        self.image_token_id = image_token_id
        self.video_token_id = video_token_id
        self.pad_token_id = 0
        self.num_frames = num_frames
        self.projector_type = projector_type
        self.vision_feature_select_strategy = "full" if vision_model_type == "siglip_vision_model" else "default"
        self.text_config = {
            "model_type": text_model_type,
            "vocab_size": 99,
            "hidden_size": 32,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 512,
            "pad_token_id": self.pad_token_id,
            "bos_token_id": 1,
            "eos_token_id": 2,
        }
        self.vision_config = {
            "model_type": vision_model_type,
            "hidden_size": 16,
            "intermediate_size": 37,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 8,
            "patch_size": 4,
        }
        self.audio_config = dict(TINY_AUDIO_CONFIG) if audio else None
        self.audio_token_id = audio_token_id
        self.image_size = self.vision_config["image_size"]
        self.patch_size = self.vision_config["patch_size"]
        self.num_hidden_layers = self.text_config["num_hidden_layers"]
        self.num_attention_heads = self.text_config["num_attention_heads"]
        self.hidden_size = self.text_config["hidden_size"]
        self.vocab_size = self.text_config["vocab_size"]
        self.num_visual_tokens = self.get_config().get_num_visual_tokens()
        self.num_audio_tokens = self.get_config().audio_config.get_num_audio_tokens(TINY_AUDIO_FRAMES) if audio else 0
        self.seq_length = text_length + 2 * self.num_visual_tokens + self.num_audio_tokens

    def get_config(self):
        return VideoLlama2Config(
            text_config=self.text_config,
            vision_config=self.vision_config,
            projector_type=self.projector_type,
            projector_depth=1,
            num_frames=self.num_frames,
            vision_feature_layer=-2,
            vision_feature_select_strategy=self.vision_feature_select_strategy,
            image_token_id=self.image_token_id,
            video_token_id=self.video_token_id,
            audio_config=self.audio_config,
            audio_token_id=self.audio_token_id if self.audio_config else None,
        )

    def prepare_config_and_inputs(self):
        size = self.image_size
        pixel_values = floats_tensor([self.batch_size, 3, size, size])
        pixel_values_videos = floats_tensor([self.batch_size, self.num_frames, 3, size, size])
        return self.get_config(), pixel_values, pixel_values_videos

    def prepare_config_and_inputs_for_common(self):
        config, pixel_values, pixel_values_videos = self.prepare_config_and_inputs()
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size - 6) + 6
        run = self.num_visual_tokens
        input_ids[:, 1 : 1 + run] = self.image_token_id
        input_ids[:, 2 + run : 2 + 2 * run] = self.video_token_id
        input_ids[:, 3 + 2 * run : 3 + 2 * run + self.num_audio_tokens] = self.audio_token_id
        attention_mask = torch.ones_like(input_ids)
        input_ids[0, 0], attention_mask[0, 0] = self.pad_token_id, 0  # one left-padded row
        inputs_dict = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "pixel_values": pixel_values,
            "pixel_values_videos": pixel_values_videos,
        }
        if self.audio_config:
            mel_bins = self.audio_config["num_mel_bins"]
            inputs_dict["input_features"] = floats_tensor([self.batch_size, TINY_AUDIO_FRAMES, mel_bins], scale=10.0)
        return config, inputs_dict


class VideoLlama2CommonTests(ModelTesterMixin, GenerationTesterMixin):
    """The mixins' tests, shared by both configurations (each subclass sets `tester_kwargs`)."""

    all_model_classes = (VideoLlama2Model, VideoLlama2ForConditionalGeneration)
    _is_composite = True
    # The tower's hidden states are per frame: (num_videos * frames, patches, hidden).
    skip_test_video_features_output_shape = True
    # Features come from the tower's layer -2, as in the released checkpoints: its last layer and post-layernorm (and
    # SigLIP's pooling head) are part of the checkpoint but never used, so they get no gradient. Checkpointed and plain
    # runs are still compared parameter by parameter.
    test_all_params_have_gradient = False
    tester_kwargs = {}

    @classmethod
    def setUpClass(cls):
        # Tiny models: a pool of intra-op threads costs more than it saves (the suite takes twice as long on 2 cores).
        cls.addClassCleanup(torch.set_num_threads, torch.get_num_threads())
        torch.set_num_threads(1)
        # The mixins read transformers' static auto tables; list VideoLLaMA2 there as an in-tree model would be.
        for table, name in (
            (modeling_auto.MODEL_MAPPING_NAMES, "VideoLlama2Model"),
            (modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES, "VideoLlama2ForConditionalGeneration"),
        ):
            patcher = patch.dict(table, {VideoLlama2Config.model_type: name})
            patcher.start()
            cls.addClassCleanup(patcher.stop)

    def setUp(self):
        # Weights and inputs are random: seeded per test, so that every run of a test sees the same ones and a failure
        # repeats instead of coming and going.
        seed = zlib.crc32(self.id().encode())
        set_seed(seed)
        for rng in (global_rng, generation_rng):  # the mixins' own input generators
            rng.seed(seed)
        self.model_tester = VideoLlama2ModelTester(self, **self.tester_kwargs)
        self.config_tester = ConfigTester(self, config_class=VideoLlama2Config, has_text_modality=False)

    def test_config(self):
        self.config_tester.run_common_tests()

    @unittest.skip(
        reason="The registered key mapping reads released checkpoints in the original layout; saving writes the "
        "transformers layout on purpose, so it is not reversed on save."
    )
    def test_reverse_loading_mapping(self):
        pass

    def _audio_features_prepare_config_and_inputs(self):
        if self.model_tester.audio_config is None:
            self.skipTest("only audio-visual configurations have an audio tower (`get_audio_features` raises)")
        return super()._audio_features_prepare_config_and_inputs()


class VideoLlama2ClipMistralStcTest(VideoLlama2CommonTests, unittest.TestCase):
    tester_kwargs = {"text_model_type": "mistral", "vision_model_type": "clip_vision_model"}


class VideoLlama2SiglipQwen2StcV35Test(VideoLlama2CommonTests, unittest.TestCase):
    tester_kwargs = {
        "text_model_type": "qwen2",
        "vision_model_type": "siglip_vision_model",
        "projector_type": "stc_connector_v35",
        "num_frames": 4,
    }


class VideoLlama2SiglipQwen2AudioVisualTest(VideoLlama2CommonTests, unittest.TestCase):
    tester_kwargs = {
        "text_model_type": "qwen2",
        "vision_model_type": "siglip_vision_model",
        "projector_type": "stc_connector_v35",
        "num_frames": 4,
        "audio": True,
    }
