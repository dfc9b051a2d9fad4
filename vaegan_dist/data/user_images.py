"""A user's own photos as model input, prepared exactly as ``vaegan-dist prepare folder`` prepares a folder:
upright per the EXIF orientation, a centred square crop, a blur in proportion to the downscale, a bicubic
resize. Editing a face from a phone must see what training saw."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from vaegan_dist.data.manifest import DataError
from vaegan_dist.data.preprocess import ImageTooLarge, load_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
FOLDER_CROP = "center"  # what prepare folder uses


MAX_UPLOAD_PIXELS = 4096 * 4096  # a phone photo; a request must not cost a replica the converter's 40 MP budget
UPLOAD_FORMATS = ("JPEG", "PNG", "WEBP")  # what the service accepts, whatever else PIL could open
UNREADABLE = (UnidentifiedImageError, ImageTooLarge, Image.DecompressionBombError, OSError, ValueError, SyntaxError)


def load_user_image_bytes(data: bytes, size: int, name: str) -> torch.Tensor:
    """An uploaded photo -> uint8 [3, size, size], prepared as :func:`load_user_images` prepares a file; an
    empty or unreadable one is a one-line :class:`DataError` naming ``name`` (the upload's field)."""
    if not data:
        raise DataError(f"{name}: the upload is empty")
    try:
        pixels = load_image(io.BytesIO(data), FOLDER_CROP, size, max_pixels=MAX_UPLOAD_PIXELS, formats=UPLOAD_FORMATS)
    except UNREADABLE as err:
        raise DataError(f"{name}: not a readable jpg, png or webp image ({type(err).__name__}: "
                        f"{str(err)[:200]})") from None
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def load_user_images(paths: Sequence[str | Path], size: int) -> torch.Tensor:
    """Image files -> uint8 [N, 3, size, size]; a file that is missing, of another type or unreadable is a
    one-line error naming it (before anything is computed)."""
    images = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            raise DataError(f"--image {path}: is a directory, not an image file")
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            raise DataError(f"--image {path}: not a jpg, png or webp file")
        if not path.is_file():
            raise DataError(f"--image {path}: no such file")
        try:
            pixels = load_image(path, FOLDER_CROP, size)
        except UNREADABLE as err:
            raise DataError(f"--image {path}: unreadable image ({type(err).__name__}: {str(err)[:200]})") from None
        images.append(torch.from_numpy(pixels.copy()).permute(2, 0, 1))
    return torch.stack(images)
