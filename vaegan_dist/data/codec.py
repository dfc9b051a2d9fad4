"""Image bytes as stored in shards <-> pixels: the one place that knows the encodings.

Writers (which run in converter processes and never import torch) call :func:`encode_image`; the reader
calls :func:`decode_image_bytes`, which imports torch only when first used.
"""

from __future__ import annotations

import io
from pathlib import Path
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


def to_unit_range(images: torch.Tensor, device: torch.device | str = "cpu",
                  memory_format: torch.memory_format | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """uint8 [B, 3, S, S] -> float32 (or ``dtype``) in [-1, 1] on ``device``, the range the networks work
    in (the copy moves uint8, 4x fewer bytes than float32)."""
    import torch

    x = images.to(device, non_blocking=True).to(dtype or torch.float32).div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=memory_format or torch.contiguous_format)


GRID_ROW = 8  # images per row of every grid


def interleave_rows(originals: torch.Tensor, reconstructions: torch.Tensor, row: int = GRID_ROW) -> torch.Tensor:
    """A reconstruction grid's images: a row of originals, then the same images reconstructed, and so on (the
    training grids and `vaegan-dist reconstruct` show them alike)."""
    import torch

    return torch.cat([t for r in range(0, originals.shape[0], row)
                      for t in (originals[r : r + row], reconstructions[r : r + row])])


def write_grid(images: torch.Tensor, path: str | Path, nrow: int = GRID_ROW) -> torch.Tensor:
    """Images in [-1, 1] [N, 3, S, S] -> a PNG grid at ``path`` (written atomically); returns the grid
    [3, H, W] in [0, 1] (TensorBoard shows the same one)."""
    from torchvision.utils import make_grid, save_image

    from vaegan_dist.atomic import atomic_file

    grid = make_grid(images.detach().float().cpu(), nrow=nrow, normalize=True, value_range=(-1, 1))
    with atomic_file(path) as f:
        save_image(grid, f, format="png")
    return grid
