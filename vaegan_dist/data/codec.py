"""Image bytes as stored in shards <-> pixels: the one place that knows the encodings.

Writers (which run in converter processes and never import torch) call :func:`encode_image`; the reader
calls :func:`decode_image_bytes`, which imports torch only when first used.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    import torch

IMAGE_ENCODINGS = ("png", "jpg", "raw")  # raw: H*W*3 bytes of uint8 RGB, the side from the manifest


def encode_image(image: np.ndarray, encoding: str) -> bytes:
    """uint8 [H, W, 3] -> file bytes."""
    buf = io.BytesIO()
    if encoding == "png":
        Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    elif encoding == "jpg":
        Image.fromarray(image).save(buf, format="JPEG", quality=95)
    elif encoding == "raw":
        return np.ascontiguousarray(image, dtype=np.uint8).tobytes()
    else:
        raise ValueError(f"image encoding {encoding!r} is not one of {', '.join(IMAGE_ENCODINGS)}")
    return buf.getvalue()


def decode_image_bytes(data: bytes, encoding: str, image_size: int | None) -> torch.Tensor:
    """Stored image bytes -> uint8 [3, S, S]. ``raw`` needs the side from the manifest."""
    import torch
    from torchvision.io import ImageReadMode, decode_image

    buffer = torch.frombuffer(bytearray(data), dtype=torch.uint8)
    if encoding == "raw":
        return buffer.view(image_size, image_size, 3).permute(2, 0, 1).contiguous()
    return decode_image(buffer, mode=ImageReadMode.RGB)
