# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""VideoLLaMA2 image processor: the vision tower's preprocessing with PIL, as the original ran it."""

from transformers import CLIPImageProcessorPil


class VideoLlama2ImageProcessor(CLIPImageProcessorPil):
    r"""
    The vision tower's image preprocessing (resize, center crop, rescale, normalize) with the PIL backend.

    transformers' CLIP and SigLIP processors load with the torchvision backend by default, whose bicubic resize differs
    from the original's PIL one by up to 0.015 after normalisation. Saved under this name, a converted checkpoint's
    image processor is PIL through every loading path, `AutoImageProcessor.from_pretrained` included (whatever
    `backend` it is asked for).

    Defaults are CLIP ViT-L/14-336's: CLIP's PIL processor (bicubic, center crop, CLIP mean and std) at 336 pixels.
    A SigLIP tower's are `size={"height": 384, "width": 384}`, `do_center_crop=False`, `image_mean=image_std=0.5`.
    """

    size = {"shortest_edge": 336}
    crop_size = {"height": 336, "width": 336}


__all__ = ["VideoLlama2ImageProcessor"]
