# Copyright 2026 The videollama2-hf authors. Licensed under the Apache License, Version 2.0.
"""VideoLLaMA2 image processor: the vision tower's preprocessing with PIL, as the original ran it, and the reading of
images: one rule to RGB for image files and PIL objects alike (`rgb_pixels`), from every source the video and audio
decoders accept (`open_image`)."""

import base64
import binascii
import os

import numpy as np
import PIL.ExifTags
import PIL.Image
import PIL.ImageOps
from transformers import CLIPImageProcessorPil
from transformers.image_utils import ChannelDimension, infer_channel_dimension_format

from .media_sources_videollama2 import MediaNotFoundError, check_not_empty, is_video_source, media_source


# Modes of 16-bit samples, and PIL's 32-bit integer mode, in which Pillow reads 16-bit PNGs and TIFFs too.
_WIDE_INTEGER_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def rgb_pixels(image: PIL.Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of a PIL image, by one rule for image files and PIL objects alike:

    * the EXIF orientation is applied (as transformers' `load_image` does for files), so photos come out upright;
    * 16-bit samples are scaled to 8 bits as an 8-bit copy of the picture holds them (`round(v / 257)`), where PIL's
      `convert("RGB")` clips them (a 16-bit gradient comes out almost all white);
    * alpha is dropped, as the original's `convert("RGB")` drops it: transparent pixels keep their colour, nothing
      is blended (transformers blends PIL objects on white). Blend beforehand if the model should see a background.
    """
    if image.getexif().get(PIL.ExifTags.Base.Orientation, 1) != 1:
        image = PIL.ImageOps.exif_transpose(image)
    if image.mode in _WIDE_INTEGER_MODES:
        gray = np.clip(np.rint(np.asarray(image, dtype=np.float64) / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=-1)
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def _bare_base64(text: str) -> bytes | None:
    """The bytes of a long base64 string (transformers' `load_image` accepts images as such), else None."""
    if len(text) < 64:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        return None


def open_image(source) -> PIL.Image.Image:
    """A decoded PIL image, its file closed, from a path, `file://` or `http(s)` URL, `data:` URI, bytes, file object
    or bare base64 string. One-line errors for what is missing, empty, too large or not an image."""
    if isinstance(source, str) and not source.startswith(("http://", "https://", "data:", "file://")):
        if not os.path.exists(source):
            source = _bare_base64(source) or source
    openable, name = media_source(source, "image")
    if isinstance(openable, str) and not os.path.isfile(openable):
        raise MediaNotFoundError(f"No image file at {openable}. Check the path.")
    check_not_empty(openable, name, "image")
    try:
        with PIL.Image.open(openable) as image:
            image.load()
    except PIL.Image.DecompressionBombError as error:
        raise ValueError(
            f"{name} is too large to decode safely: {error} Downscale it first, or raise `PIL.Image.MAX_IMAGE_PIXELS` "
            "if you trust the file."
        ) from None
    except (OSError, SyntaxError) as error:  # PIL's UnidentifiedImageError is an OSError
        raise ValueError(f"{name} is not an image PIL can read ({error}).") from None
    return image


def load_image(source) -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of an image file (or any source `open_image` reads), by `rgb_pixels`' rule."""
    return rgb_pixels(open_image(source))


class VideoLlama2ImageProcessor(CLIPImageProcessorPil):
    r"""
    The vision tower's image preprocessing (resize, center crop, rescale, normalize) with the PIL backend.

    transformers' CLIP and SigLIP processors load with the torchvision backend by default, whose bicubic resize differs
    from the original's PIL one by up to 0.015 after normalisation. Saved under this name, a converted checkpoint's
    image processor is PIL through every loading path, `AutoImageProcessor.from_pretrained` included (whatever
    `backend` it is asked for).

    Images may be given as PIL images, arrays, or sources to read: paths, `file://` and `http(s)` URLs, `data:` URIs,
    bytes and file objects. Every image becomes RGB by one rule (`rgb_pixels`: EXIF orientation applied, 16-bit
    samples scaled to 8 bits, alpha dropped as the original does).

    Defaults are CLIP ViT-L/14-336's: CLIP's PIL processor (bicubic, center crop, CLIP mean and std) at 336 pixels.
    A SigLIP tower's are `size={"height": 384, "width": 384}`, `do_center_crop=False`, `image_mean=image_std=0.5`.
    """

    size = {"shortest_edge": 336}
    crop_size = {"height": 336, "width": 336}

    def fetch_images(self, image_url_or_urls):
        """Sources decoded with `open_image` (files closed, clear errors); images and arrays returned as given."""
        if isinstance(image_url_or_urls, (list, tuple)):
            return [self.fetch_images(item) for item in image_url_or_urls]
        return open_image(image_url_or_urls) if is_video_source(image_url_or_urls) else image_url_or_urls

    def convert_to_rgb(self, image, input_data_format=None) -> np.ndarray:
        """`rgb_pixels` for PIL images; arrays with an alpha channel lose it too (the same rule), others as CLIP's."""
        if isinstance(image, PIL.Image.Image):
            return rgb_pixels(image)
        if isinstance(image, np.ndarray) and image.ndim == 3:
            channels = input_data_format or infer_channel_dimension_format(image, num_channels=(1, 3, 4))
            if ChannelDimension(channels) == ChannelDimension.LAST and image.shape[-1] == 4:
                return image[..., :3]
            if ChannelDimension(channels) == ChannelDimension.FIRST and image.shape[0] == 4:
                return image[:3]
        return super().convert_to_rgb(image, input_data_format=input_data_format)


__all__ = ["VideoLlama2ImageProcessor"]
