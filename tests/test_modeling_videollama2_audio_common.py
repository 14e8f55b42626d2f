# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""transformers' own model and config test suites (`ModelTesterMixin`, `ConfigTester`, imported unmodified from
../shared/hf-tests, which conftest.py puts on `sys.path`) on a tiny BEATs audio encoder.
"""

import unittest
from unittest.mock import patch

from torch import nn
from transformers.models.auto import modeling_auto
from videollama2_test_utils import TINY_AUDIO_CONFIG

from tests import test_configuration_common as configuration_common
from tests import test_modeling_common as common
from videollama2_hf import VideoLlama2AudioEncoder, VideoLlama2AudioEncoderConfig


TINY = TINY_AUDIO_CONFIG  # layerdrop 0: layer dropping would skip recorded outputs


class VideoLlama2AudioEncoderTester:
    """A batch of two 48-frame filterbanks: 3 x 2 patches of 16 x 16, so 6 tokens."""

    def __init__(self, parent, batch_size=2, num_frames=48):
        self.parent = parent
        self.batch_size = batch_size
        self.num_frames = num_frames
        self.is_training = True
        self.hidden_size = TINY["hidden_size"]
        self.num_hidden_layers = TINY["num_hidden_layers"]
        self.num_attention_heads = TINY["num_attention_heads"]
        self.seq_length = self.get_config().get_num_audio_tokens(num_frames)

    def get_config(self):
        return VideoLlama2AudioEncoderConfig(**TINY)

    def prepare_config_and_inputs_for_common(self):
        features = common.floats_tensor([self.batch_size, self.num_frames, TINY["num_mel_bins"]], scale=10.0)
        return self.get_config(), {"input_features": features}


class VideoLlama2AudioEncoderModelTest(common.ModelTesterMixin, unittest.TestCase):
    all_model_classes = (VideoLlama2AudioEncoder,)
    test_resize_embeddings = False  # no vocabulary

    @classmethod
    def setUpClass(cls):
        # The mixins read transformers' static auto tables; list the encoder there as an in-tree model would be.
        patcher = patch.dict(
            modeling_auto.MODEL_MAPPING_NAMES, {VideoLlama2AudioEncoderConfig.model_type: "VideoLlama2AudioEncoder"}
        )
        patcher.start()
        cls.addClassCleanup(patcher.stop)

    def setUp(self):
        self.model_tester = VideoLlama2AudioEncoderTester(self)
        self.config_tester = configuration_common.ConfigTester(
            self, config_class=VideoLlama2AudioEncoderConfig, has_text_modality=False, **TINY
        )

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_model_get_set_embeddings(self):
        """The input embedding is the patch convolution, not a vocabulary table."""
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        model = VideoLlama2AudioEncoder(config)
        self.assertIsInstance(model.get_input_embeddings(), nn.Conv2d)
        self.assertIsNone(model.get_output_embeddings())
