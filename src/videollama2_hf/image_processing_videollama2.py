# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""VideoLLaMA2 image processor: the vision tower's preprocessing with PIL, as the original ran it."""

from transformers.image_processing_backends import PilBackend
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling


class VideoLlama2ImageProcessor(PilBackend):
    r"""
    The vision tower's image preprocessing (resize, center crop, rescale, normalize) with the PIL backend.

    transformers' CLIP and SigLIP processors load with the torchvision backend by default, whose bicubic resize differs
    from the original's PIL one by up to 0.015 after normalisation. Saved under this name, a converted checkpoint's
    image processor is PIL through every loading path, `AutoImageProcessor.from_pretrained` included (whatever
    `backend` it is asked for).

    Defaults are CLIP ViT-L/14-336's (shortest edge resized to 336 with bicubic, center crop 336, CLIP mean and std).
    A SigLIP tower's are `size={"height": 384, "width": 384}`, `do_center_crop=False`, `image_mean=image_std=0.5`.
    """

    resample = PILImageResampling.BICUBIC
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    size = {"shortest_edge": 336}
    default_to_square = False
    crop_size = {"height": 336, "width": 336}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True


__all__ = ["VideoLlama2ImageProcessor"]
