"""Images from the wild through VideoLlama2ImageProcessor and the processor: 16-bit PNGs, transparency, EXIF
orientation, GIFs, decompression bombs, and every source a client sends (paths, `file://` URLs, `data:` URIs,
bytes). One rule makes RGB of a file and of the same picture as a PIL object.

Every image is generated here with PIL; nothing is mocked.
"""

import base64
import gc
import io
import warnings

import numpy as np
import PIL.ExifTags
import PIL.Image
import pytest
import torch

from videollama2_hf import VideoLlama2ImageProcessor


RAW = {"do_resize": False, "do_center_crop": False, "do_rescale": False, "do_normalize": False}


def _pixels(image, **kwargs) -> np.ndarray:
    """(H, W, 3) uint8 pixels the image processor gives the model (resizing and scaling off)."""
    processed = VideoLlama2ImageProcessor(**RAW, **kwargs)(image, return_tensors="pt")["pixel_values"][0]
    return processed.permute(1, 2, 0).to(torch.uint8).numpy()


def _png(image: PIL.Image.Image, path=None, **params):
    target = path or io.BytesIO()
    image.save(target, format="PNG", **params)
    return path or target.getvalue()


@pytest.fixture(scope="module")
def gradient() -> np.ndarray:
    """A 16-bit grayscale ramp over the whole 0..65535 range, 48x64."""
    return np.linspace(0, 65535, 48 * 64).round().astype(np.uint16).reshape(48, 64)


def test_16_bit_png_is_the_picture_of_its_8_bit_copy(gradient, tmp_path):
    """PIL's convert("RGB") clips 16-bit samples to 255 (a white picture); an 8-bit copy holds round(v / 257)."""
    sixteen = PIL.Image.fromarray(gradient)
    assert sixteen.mode == "I;16"
    path = _png(sixteen, tmp_path / "gradient16.png")
    eight = np.round(gradient / 257).astype(np.uint8)  # the 8-bit copy, as image tools write it
    expected = np.repeat(eight[..., None], 3, axis=-1)
    for image in (str(path), PIL.Image.open(path), sixteen, PIL.Image.fromarray(gradient.astype(np.int32))):
        np.testing.assert_array_equal(_pixels(image), expected)
    assert abs(_pixels(str(path)).mean() - 127.5) < 1  # not white
    # an image saved from the 8-bit copy gives the same pixels as the 16-bit original
    copy = _png(PIL.Image.fromarray(eight), tmp_path / "gradient8.png")
    np.testing.assert_array_equal(_pixels(str(copy)), _pixels(str(path)))


def test_rgba_path_and_pil_object_follow_one_rule(tmp_path):
    """Alpha is dropped, as the original's convert("RGB") drops it: a file and the same PIL object give the same
    pixels, those of the colour channels."""
    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (40, 56, 4), dtype=np.uint8)
    rgba[:20, :, 3] = 0  # half transparent, with colours behind
    image = PIL.Image.fromarray(rgba, "RGBA")
    path = _png(image, tmp_path / "rgba.png")
    expected = rgba[..., :3]
    for source in (str(path), image, PIL.Image.open(path), rgba, np.moveaxis(rgba, -1, 0).copy()):
        np.testing.assert_array_equal(_pixels(source), expected)
    la = PIL.Image.fromarray(rgba[..., :2], "LA")
    np.testing.assert_array_equal(_pixels(la), np.repeat(rgba[..., :1], 3, axis=-1))


def test_exif_orientation_applies_to_files_and_pil_objects(tmp_path):
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    image = PIL.Image.fromarray(pixels)
    exif = image.getexif()
    exif[PIL.ExifTags.Base.Orientation] = 6  # shown turned a quarter clockwise
    path = tmp_path / "photo.png"
    image.save(path, exif=exif)
    upright = np.rot90(pixels, -1)
    np.testing.assert_array_equal(_pixels(str(path)), upright)
    np.testing.assert_array_equal(_pixels(PIL.Image.open(path)), upright)


def test_gif_path_leaves_no_file_open(tmp_path):
    frames = [PIL.Image.fromarray(np.full((16, 16, 3), 60 * i, np.uint8)) for i in range(3)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        _pixels(str(path))
        gc.collect()  # an unclosed file would warn here, as its object is collected


def test_decompression_bomb_is_one_line_error(tmp_path, monkeypatch):
    """Over twice PIL.Image.MAX_IMAGE_PIXELS, Pillow refuses to decode: a one-line ValueError saying what to do."""
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 500)
    path = _png(PIL.Image.new("L", (40, 30)), tmp_path / "big.png")  # 1200 pixels
    with pytest.raises(ValueError, match=r"big.png is too large to decode safely: .*decompression bomb.*Downscale"):
        _pixels(str(path))


def test_every_source_gives_the_same_pixels(tmp_path):
    image = PIL.Image.fromarray(np.random.default_rng(2).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    (tmp_path / "a folder é").mkdir()
    path = _png(image, tmp_path / "a folder é" / "image.png")
    data = path.read_bytes()
    encoded = base64.b64encode(data).decode()
    expected = np.asarray(image)
    for source in (str(path), path.as_uri(), f"data:image/png;base64,{encoded}", encoded, data, io.BytesIO(data)):
        np.testing.assert_array_equal(_pixels(source), expected)
    with pytest.raises(FileNotFoundError, match="No image file at"):
        _pixels(str(tmp_path / "missing.png"))
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.png is empty \(0 bytes\)"):
        _pixels(str(empty))
    with pytest.raises(ValueError, match="is not an image PIL can read"):
        _pixels(b"not an image at all")
