"""`VideoLlama2Processor._get_num_multimodal_tokens` (asked by serving engines) equals the processor's expansion."""

import numpy as np
import pytest
from PIL import Image

from videollama2_hf.original_checkpoint import load_original_processor


VARIANTS = ["mistral_stc_f8", "mistral_stc_f16", "mistral_mlp2x_gelu", "mistral_stp", "qwen2_siglip_stcv35_f16"]
IMAGE_SIZES = [(56, 56), (480, 640), (1080, 720), (31, 300)]  # (height, width)
VIDEO_SIZES = [(8, 56, 56), (16, 360, 640), (40, 90, 120), (3, 64, 48)]  # (frames, height, width)


@pytest.fixture(scope="module", params=VARIANTS)
def processor(request, fixtures_dir):
    variant = fixtures_dir / request.param
    return load_original_processor(variant / "original_checkpoint", vision_tower=variant / "vision_tower")


def count(input_ids, token_id):
    return (input_ids == token_id).sum(-1).tolist()


def test_image_tokens_match_the_expansion(processor):
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in IMAGE_SIZES]
    inputs = processor(text=["<image>\nWhat?"] * len(images), images=images, padding=True)
    expected = processor._get_num_multimodal_tokens(image_sizes=IMAGE_SIZES)
    assert count(inputs["input_ids"], processor.image_token_id) == expected["num_image_tokens"]
    assert expected["num_image_patches"] == [1] * len(IMAGE_SIZES)


def test_video_tokens_match_the_expansion(processor):
    """`video_sizes` describe the frames to process (sampled already), as transformers defines them."""
    rng = np.random.default_rng(1)
    expected = processor._get_num_multimodal_tokens(video_sizes=VIDEO_SIZES)["num_video_tokens"]
    for size, tokens in zip(VIDEO_SIZES, expected):
        video = rng.integers(0, 256, size, dtype=np.uint8)[..., None].repeat(3, -1)
        inputs = processor(text="<video>\nWhat?", videos=[video], do_sample_frames=False)
        assert count(inputs["input_ids"], processor.video_token_id) == [tokens]
        # cut to max_frames (32), padded to the model's num_frames
        num_frames = processor.video_processor.num_frames
        assert inputs["pixel_values_videos"].shape[1] == max(min(size[0], 32), num_frames)


def test_both_modalities_at_once(processor):
    image = Image.new("RGB", (100, 80))
    video = np.zeros((12, 40, 40, 3), dtype=np.uint8)
    inputs = processor(text="<image>\n<video>\nCompare.", images=[image], videos=[video])
    num_frames = processor.video_processor.num_frames  # the 12 frames are sampled to these
    expected = processor._get_num_multimodal_tokens(image_sizes=[(80, 100)], video_sizes=[(num_frames, 40, 40)])
    assert count(inputs["input_ids"], processor.image_token_id) == expected["num_image_tokens"]
    assert count(inputs["input_ids"], processor.video_token_id) == expected["num_video_tokens"]
