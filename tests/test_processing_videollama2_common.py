"""transformers' own processor test suite (`ProcessorTesterMixin`, imported unmodified from ../shared/hf-tests) on
`VideoLlama2Processor`, with the Mistral fixture's tokenizer and small (28 px, 2-frame) image and video processors.

The mixin reads a few Hub media by URL, or a local file of the same name in the working directory: the stand-ins of
`make_media.py` are written to a temporary folder, which is the working directory while the mixin is imported and
while these tests run.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from unittest.mock import patch

import numpy as np
import pytest
from conftest import HF_TESTS_DIR, SHARED_DIR

from videollama2_hf import VideoLlama2ImageProcessor, VideoLlama2Processor, VideoLlama2VideoProcessor
from videollama2_hf.original_layout import load_chat_template, load_original_tokenizer


MEDIA_DIR = tempfile.mkdtemp(prefix="videollama2-hf-test-media-")
atexit.register(shutil.rmtree, MEDIA_DIR, ignore_errors=True)
subprocess.run(
    [sys.executable, str(HF_TESTS_DIR / "make_media.py")],
    cwd=MEDIA_DIR,
    env={**os.environ, "VIDEOLLAMA2_SHARED": str(SHARED_DIR)},
    check=True,
)
_cwd = os.getcwd()
os.chdir(MEDIA_DIR)  # the mixin resolves its media names against the working directory when it is imported
try:
    from tests.test_processing_common import MODALITY_INPUT_DATA, ProcessorTesterMixin
finally:
    os.chdir(_cwd)

TOKENIZER_DIR = SHARED_DIR / "fixtures" / "mistral_stc_f8" / "original_checkpoint"
PIPELINE = {"size": {"shortest_edge": 28}, "crop_size": {"height": 28, "width": 28}}


@pytest.fixture(autouse=True)
def in_media_dir(monkeypatch):
    monkeypatch.chdir(MEDIA_DIR)


class VideoLlama2ProcessorTest(ProcessorTesterMixin, unittest.TestCase):
    processor_class = VideoLlama2Processor

    @classmethod
    def _setup_tokenizer(cls):
        return load_original_tokenizer(TOKENIZER_DIR)

    @classmethod
    def _setup_image_processor(cls):
        return VideoLlama2ImageProcessor(**PIPELINE)

    @classmethod
    def _setup_video_processor(cls):
        return VideoLlama2VideoProcessor(**PIPELINE, num_frames=2)

    @classmethod
    def prepare_processor_dict(cls):
        # a 2x2 patch grid and 2 frames: 8 tokens per image or video through the STC connector
        return {"chat_template": load_chat_template("mistral"), "projector_type": "stc_connector", "patch_size": 14}

    def setUp(self):
        """The processor classes unregistered from the Auto classes for each check: `import videollama2_hf` registers
        them so that saved folders carry their code, and `save_pretrained` then writes `auto_map` onto the saved
        object itself, which the mixin's save-and-reload comparisons (written for in-tree processors) do not expect."""
        super().setUp()
        for part in (VideoLlama2Processor, VideoLlama2ImageProcessor, VideoLlama2VideoProcessor):
            self.enterContext(patch.object(part, "_auto_class", None))

    @property
    def video_sampling_expectations(self):
        """The mixin's cases on its 11-frame, 30 fps clip, except that by default VideoLLaMA2 samples the model's
        `num_frames` (2 here), as the original does, where transformers' processors keep every frame."""
        expectations = super().video_sampling_expectations
        defaults = next(case for case in expectations if set(case) == {"expected_dim", "output_length"})
        defaults["output_length"] = 2
        return expectations

    def test_apply_chat_template_video_without_torchcodec(self):
        """The mixin's chat-template checks on video files and decoded videos require torchcodec, which this
        processor never uses (it decodes with PyAV): they run here without it."""
        for batch_size in (1, 2):
            self._test_apply_chat_template(
                "video", batch_size, "pt", "videos_input_name", "video_processor", MODALITY_INPUT_DATA["videos"]
            )
        decoded = [np.array(self.prepare_videos_inputs())]
        self._test_apply_chat_template("video", 1, "pt", "videos_input_name", "video_processor", decoded)

    def test_flat_kwarg_applied_when_modality_dict_lacks_it(self):
        """The mixin passes audio to every processor whose `__call__` takes it; without a feature extractor this
        processor rejects audio (transformers' processors ignore it), so its check runs on the other media."""
        with patch.object(self, "prepare_audio_inputs", return_value=None):
            super().test_flat_kwarg_applied_when_modality_dict_lacks_it()

    def test_model_input_names(self):
        """As above: the mixin's check without the audio a processor without feature extractor rejects."""
        with patch.object(self, "prepare_audio_inputs", return_value=None):
            super().test_model_input_names()
