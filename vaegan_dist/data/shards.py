"""Writing webdataset shards so that a shard is either whole under its final name or absent.

Each shard is written to ``<name>.tmp``, flushed, fsynced, hashed and only then renamed; an interrupted
writer leaves temporary files, never a truncated ``.tar``.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import webdataset as wds
from PIL import Image

from vaegan_dist.data.manifest import ShardInfo

# A fixed member time makes shards byte-for-byte reproducible, so a resumed conversion can be checked.
TAR_MTIME = 1_600_000_000
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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_shard(path: Path, samples: Iterable[dict[str, Any]]) -> ShardInfo:
    """Write one whole shard atomically: to ``<path>.tmp``, fsync, hash, then rename to ``path``."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    count = 0
    try:
        with open(tmp, "wb") as f:
            writer = wds.TarWriter(f, mtime=TAR_MTIME)
            for sample in samples:
                writer.write(sample)
                count += 1
            writer.close()
            f.flush()
            os.fsync(f.fileno())
        info = ShardInfo(path.name, count, sha256_of(tmp), tmp.stat().st_size)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return info


class ShardSeriesWriter:
    """Writes ``{prefix}-000000.tar``, ``{prefix}-000001.tar``, ... with at most ``max_samples`` each."""

    def __init__(self, out_dir: Path, prefix: str, max_samples: int = 1000):
        self.out_dir = Path(out_dir)
        self.prefix = prefix
        self.max_samples = max_samples
        self.shards: list[ShardInfo] = []
        self._writer: wds.TarWriter | None = None
        self._file = None
        self._count = 0
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def _open(self) -> None:
        name = f"{self.prefix}-{len(self.shards):06d}.tar"
        self._name = name
        self._tmp = self.out_dir / f"{name}.tmp"
        self._file = open(self._tmp, "wb")
        self._writer = wds.TarWriter(self._file, mtime=TAR_MTIME)
        self._count = 0

    def _close_shard(self) -> None:
        assert self._writer is not None and self._file is not None
        self._writer.close()  # closes the tar stream, not our file handle
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self.out_dir / self._name
        info = ShardInfo(self._name, self._count, sha256_of(self._tmp), self._tmp.stat().st_size)
        os.replace(self._tmp, final)
        self.shards.append(info)
        self._writer, self._file = None, None

    def write(self, sample: dict[str, Any]) -> None:
        if self._writer is None:
            self._open()
        self._writer.write(sample)
        self._count += 1
        if self._count >= self.max_samples:
            self._close_shard()

    def close(self) -> list[ShardInfo]:
        if self._writer is not None:
            self._close_shard()
        return self.shards

    def __enter__(self) -> ShardSeriesWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        elif self._file is not None:  # failed mid-shard: drop the partial temporary file
            self._writer.close()
            self._file.close()
            self._tmp.unlink(missing_ok=True)
