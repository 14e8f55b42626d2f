"""transformers' own video-processor test suite (`VideoProcessingTestMixin`, imported unmodified from
../shared/hf-tests) on `VideoLlama2VideoProcessor`."""

import unittest

import numpy as np
import torch
from tests.test_video_processing_common import VideoProcessingTestMixin, prepare_video_inputs
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.video_utils import VideoMetadata

from videollama2_hf import VideoLlama2VideoProcessor
from videollama2_hf.video_processing_videollama2 import sample_frame_indices


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

    def test_call_sample_frames(self):
        """The mixin's sampling checks, but asking for more frames than the clip has repeats frames (the original's
        sampler, kept on purpose and documented) where transformers' default sampler raises."""
        processor = VideoLlama2VideoProcessor(**self.video_processor_dict)
        videos = self.video_processor_tester.prepare_video_inputs(return_tensors="torch")  # (8, 3, H, W) each
        without_sampling = processor(videos, do_sample_frames=False, num_frames=3, return_tensors="pt")
        self.assertEqual(without_sampling["pixel_values_videos"].shape[1], 8)
        sampled = processor(videos, num_frames=3, return_tensors="pt", return_metadata=True)
        self.assertEqual(sampled["pixel_values_videos"].shape[1], 3)
        self.assertEqual(list(sampled["video_metadata"][0].frames_indices), sample_frame_indices(8, 3).tolist())

        with self.assertRaises(ValueError):  # a rate needs the video's frame rate
            processor.sample_frames(metadata=VideoMetadata(total_num_frames=8), fps=3)
        for metadata in ({"duration": 2.0, "total_num_frames": 8, "fps": 4}, VideoMetadata(total_num_frames=8, fps=4)):
            at_rate = processor(videos[0], fps=3, video_metadata=[[metadata]], return_tensors="pt")
            self.assertEqual(at_rate["pixel_values_videos"].shape[1], 6)  # 3 frames a second of a 2 s clip
        at_rate = processor(videos, fps=3, video_metadata=[[metadata]] * len(videos), return_tensors="pt")
        self.assertEqual(at_rate["pixel_values_videos"].shape[1], 6)

        more = processor(videos[0], num_frames=10, return_tensors="pt", return_metadata=True)
        # segment centres (i + 0.5) * 7 / 10, rounded: frames 2 and 5 are taken twice
        self.assertEqual(list(more["video_metadata"][0].frames_indices), [0, 1, 2, 2, 3, 4, 5, 5, 6, 7])
        repeated = more["pixel_values_videos"][0]
        torch.testing.assert_close(repeated[2], repeated[3], atol=0, rtol=0)

    def test_image_files_are_never_resampled(self):
        """A video given as image files is taken as sampled already, as transformers' processors take it."""
        processor = VideoLlama2VideoProcessor(**self.video_processor_dict)
        with self.assertRaisesRegex(ValueError, "Sampling frames from a list of images is not supported"):
            processor([["a.jpg", "b.jpg"]])
        frames = [np.zeros((24, 24, 3), np.uint8)] * 3
        self.assertEqual(processor([frames], return_tensors="pt")["pixel_values_videos"].shape[1], 8)  # padded
