"""Turning a source photo into a training image, done once at conversion time.

CelebA's aligned images are 178x218. The paper crops rows 40:188 and columns 15:163 (148x148, the face),
blurs against aliasing and resizes bicubically; ``square`` takes the centred 178x178 square instead (more
hair and background). Image folders get a centred square of their shorter side.

Images are checked before they are decoded: a 13000x13000 PNG is 164 KB on disk and 2.4 GB in a
converter's memory, so images above ``MAX_PIXELS`` are refused from their header. Large JPEGs are decoded
at a reduced scale (PIL's ``draft``, free in the JPEG decoder) down to twice the output side. 16-bit
greyscale images are scaled to 8 bits (PIL's own conversion clips them, so they come out nearly white).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageFilter, ImageOps

CELEBA_SIZE = (178, 218)  # width, height of img_align_celeba
CROPS = ("paper", "square")
PAPER_BOX = (15, 40, 163, 188)  # PIL box (left, upper, right, lower): columns 15:163, rows 40:188
# Standard deviation of the anti-aliasing blur per unit of downscaling: 0.33 * 148/64 = 0.76 px, the
# paper's value for CelebA at 64 px, scaled for other sizes.
BLUR_PER_DOWNSCALE = 0.33
MAX_PIXELS = 40_000_000  # decoded: 120 MB of RGB, a few copies of it per converter process
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # "I": PIL's 32-bit mode, 16-bit PNG/TIFF data


class ImageTooLarge(ValueError):
    """An image whose decoded pixels would not fit a converter's memory budget."""


def crop_box(crop: str, width: int, height: int) -> tuple[int, int, int, int]:
    """The PIL crop box for ``crop`` ("paper", "square" or "center") of a width x height image."""
    if crop == "paper":
        if (width, height) != CELEBA_SIZE:
            raise ValueError(f"the paper crop needs CelebA's aligned {CELEBA_SIZE[0]}x{CELEBA_SIZE[1]} images, "
                             f"got {width}x{height}")
        return PAPER_BOX
    if crop in ("square", "center"):
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        return left, top, left + side, top + side
    raise ValueError(f"crop {crop!r} is not one of paper, square, center")


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB; 16-bit greyscale scaled (65535 -> 255) rather than clipped."""
    if image.mode in SIXTEEN_BIT_MODES:
        values = np.asarray(image).astype(np.float64)
        grey = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    return image.convert("RGB")


def load_image(path: str | Path | BinaryIO, crop: str, size: int, max_pixels: int = MAX_PIXELS,
               formats: tuple[str, ...] | None = None) -> np.ndarray:
    """An image file (or an open binary file: an upload) -> RGB uint8 [size, size, 3]; raises
    :class:`ImageTooLarge` from the header alone."""
    with warnings.catch_warnings():  # PIL warns above 89 megapixels; our own limit (below) is lower and one line
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = Image.open(path, formats=formats)
    with image:
        width, height = image.size
        if image.format == "JPEG" and crop != "paper" and min(width, height) > 4 * size:
            scale = 2 * size / min(width, height)  # the decoder picks a power-of-two scale at least this large
            image.draft(None, (max(1, round(width * scale)), max(1, round(height * scale))))
        if image.size[0] * image.size[1] > max_pixels:
            raise ImageTooLarge(f"{width}x{height} pixels, more than the {max_pixels / 1e6:.0f} megapixel limit")
        if crop != "paper":  # a phone photo stored sideways with an EXIF orientation tag is shown upright
            image = ImageOps.exif_transpose(image)
        return crop_and_resize(image, crop, size)


def crop_and_resize(image: Image.Image, crop: str, size: int) -> np.ndarray:
    """RGB uint8 [size, size, 3]: crop, Gaussian blur in proportion to the downscale, bicubic resize."""
    image = to_rgb(image)
    box = crop_box(crop, *image.size)
    image = image.crop(box)
    downscale = (box[2] - box[0]) / size
    if downscale > 1:
        image = image.filter(ImageFilter.GaussianBlur(radius=BLUR_PER_DOWNSCALE * downscale))
    return np.asarray(image.resize((size, size), Image.BICUBIC), dtype=np.uint8)
