"""Turning a source photo into a training image, done once at conversion time.

CelebA's aligned images are 178x218. The paper crops rows 40:188 and columns 15:163 (148x148, the face),
blurs against aliasing and resizes bicubically; ``square`` takes the centred 178x178 square instead (more
hair and background). Image folders get a centred square of their shorter side.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

CELEBA_SIZE = (178, 218)  # width, height of img_align_celeba
CROPS = ("paper", "square")
PAPER_BOX = (15, 40, 163, 188)  # PIL box (left, upper, right, lower): columns 15:163, rows 40:188
# Standard deviation of the anti-aliasing blur per unit of downscaling: 0.33 * 148/64 = 0.76 px, the
# paper's value for CelebA at 64 px, scaled for other sizes.
BLUR_PER_DOWNSCALE = 0.33


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


def crop_and_resize(image: Image.Image, crop: str, size: int) -> np.ndarray:
    """RGB uint8 [size, size, 3]: crop, Gaussian blur in proportion to the downscale, bicubic resize."""
    image = image.convert("RGB")
    box = crop_box(crop, *image.size)
    image = image.crop(box)
    downscale = (box[2] - box[0]) / size
    if downscale > 1:
        image = image.filter(ImageFilter.GaussianBlur(radius=BLUR_PER_DOWNSCALE * downscale))
    return np.asarray(image.resize((size, size), Image.BICUBIC), dtype=np.uint8)
