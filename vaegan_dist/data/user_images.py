"""A user's own photos as model input, prepared exactly as ``vaegan-dist prepare folder`` prepares a folder:
upright per the EXIF orientation, a centred square crop, a blur in proportion to the downscale, a bicubic
resize. Editing a face from a phone must see what training saw."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError

from vaegan_dist.data.manifest import DataError
from vaegan_dist.data.preprocess import ImageTooLarge, load_image

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
FOLDER_CROP = "center"  # what prepare folder uses


# A request must not cost a replica the converter's 40 MP budget. A JPEG is decoded at reduced size first (PIL's
# draft, in load_image), so this bounds the size it decodes to; PNG and WebP decode whole: six concurrent 4096x4096
# PNG uploads took 8-10 s each and grew a replica from 0.96 to 2.5 GB (the serve probe), a quarter of that here.
MAX_UPLOAD_PIXELS = 2048 * 2048
_OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")  # PIL names the file object it read: not for a user
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
        raise DataError(f"{name}: not a readable jpg, png or webp image ({why_unreadable(err)})") from None
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1)


def why_unreadable(err: BaseException) -> str:
    """The reason an image could not be read, in words for the person who sent it (no Python object reprs)."""
    if isinstance(err, UnidentifiedImageError):
        return "its bytes are not an image of a known format"
    text = _OBJECT_REPR.sub("the image", str(err)).strip()
    return text[:200] if text else type(err).__name__


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
            raise DataError(f"--image {path}: unreadable image ({why_unreadable(err)})") from None
        images.append(torch.from_numpy(pixels.copy()).permute(2, 0, 1))
    return torch.stack(images)
