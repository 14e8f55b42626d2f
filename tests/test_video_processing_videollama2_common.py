"""transformers' own video-processor test suite (`VideoProcessingTestMixin`, imported unmodified from
../shared/hf-tests) on `VideoLlama2VideoProcessor`."""

import unittest

import numpy as np
import torch
from tests.test_video_processing_common import VideoProcessingTestMixin, prepare_video_inputs
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from videollama2_hf import VideoLlama2VideoProcessor


class VideoLlama2VideoProcessingTester:
    """Small random clips (30-80 px, 8 frames) and a CLIP-like processor resizing to 20 and cropping to 18."""

    def __init__(self, parent, batch_size=5, num_frames=8, num_channels=3, min_resolution=30, max_resolution=80):
        self.parent = parent
        self.batch_size = batch_size
        self.num_frames = num_frames
        self.num_channels = num_channels
        self.min_resolution = min_resolution
        self.max_resolution = max_resolution
        self.size = {"shortest_edge": 20}
        self.crop_size = {"height": 18, "width": 18}

    def prepare_video_processor_dict(self):
        return {
            "do_resize": True,
            "size": self.size,
            "do_center_crop": True,
            "crop_size": self.crop_size,
            "do_normalize": True,
            "image_mean": OPENAI_CLIP_MEAN,
            "image_std": OPENAI_CLIP_STD,
            "do_convert_rgb": True,
            "num_frames": self.num_frames,
        }

    def expected_output_video_shape(self, videos):
        return self.num_frames, self.num_channels, self.crop_size["height"], self.crop_size["width"]

    def prepare_video_inputs(self, equal_resolution=False, return_tensors="pil"):
        return prepare_video_inputs(
            batch_size=self.batch_size,
            num_frames=self.num_frames,
            num_channels=self.num_channels,
            min_resolution=self.min_resolution,
            max_resolution=self.max_resolution,
            equal_resolution=equal_resolution,
            return_tensors=return_tensors,
        )


class VideoLlama2VideoProcessingTest(VideoProcessingTestMixin, unittest.TestCase):
    fast_video_processing_class = VideoLlama2VideoProcessor

    def setUp(self):
        super().setUp()
        self.video_processor_tester = VideoLlama2VideoProcessingTester(self)

    @property
    def video_processor_dict(self):
        return self.video_processor_tester.prepare_video_processor_dict()

    def test_short_clip_at_the_model_num_frames_repeats_frames(self):
        """The mixin's `test_call_sample_frames` holds for explicit counts; at the model's own `num_frames` a clip
        shorter than that repeats frames as the original's sampler does (the mixin's tester never asks for it)."""
        processor = VideoLlama2VideoProcessor(**{**self.video_processor_dict, "num_frames": 10})
        video = self.video_processor_tester.prepare_video_inputs(return_tensors="torch")[0]  # 8 frames
        more = processor(video, return_tensors="pt", return_metadata=True)
        # segment centres (i + 0.5) * 7 / 10, rounded: frames 2 and 5 are taken twice
        self.assertEqual(list(more["video_metadata"][0].frames_indices), [0, 1, 2, 2, 3, 4, 5, 5, 6, 7])
        repeated = more["pixel_values_videos"][0]
        torch.testing.assert_close(repeated[2], repeated[3], atol=0, rtol=0)
        with self.assertRaisesRegex(ValueError, "num_frames=12.*only 8 frames"):
            processor(video, num_frames=12, return_tensors="pt")
        with self.assertRaisesRegex(ValueError, "fps=9.*18 frames.*only 8 frames"):
            processor(video, fps=9, video_metadata={"fps": 4}, return_tensors="pt")

    def test_image_files_are_never_resampled(self):
        """A video given as image files is taken as sampled already, as transformers' processors take it."""
        processor = VideoLlama2VideoProcessor(**self.video_processor_dict)
        with self.assertRaisesRegex(ValueError, "Sampling frames from a list of images is not supported"):
            processor([["a.jpg", "b.jpg"]])
        frames = [np.zeros((24, 24, 3), np.uint8)] * 3
        self.assertEqual(processor([frames], return_tensors="pt")["pixel_values_videos"].shape[1], 8)  # padded
