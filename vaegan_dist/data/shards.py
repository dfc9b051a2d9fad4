"""Writing webdataset shards so that a shard is either whole under its final name or absent.

Each shard is written to ``<name>.tmp``, flushed, fsynced, hashed and only then renamed; an interrupted
writer leaves temporary files, never a truncated ``.tar``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import webdataset as wds

from vaegan_dist.data.codec import IMAGE_ENCODINGS, encode_image  # noqa: F401  (re-exported for older importers)
from vaegan_dist.data.manifest import ShardInfo

# A fixed member time makes shards byte-for-byte reproducible, so a resumed conversion can be checked.
TAR_MTIME = 1_600_000_000


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
    """Writes ``{prefix}-000000.tar``, ``{prefix}-000001.tar``, ... with at most ``max_samples`` each.

    Samples are held until a shard is full (a few MB of encoded images), then written whole by
    :func:`write_shard`; a writer that fails mid-shard leaves nothing of that shard behind.
    """

    def __init__(self, out_dir: Path, prefix: str, max_samples: int = 1000):
        self.out_dir = Path(out_dir)
        self.prefix = prefix
        self.max_samples = max_samples
        self.shards: list[ShardInfo] = []
        self._pending: list[dict[str, Any]] = []
        self.out_dir.mkdir(parents=True, exist_ok=True)

    def _flush(self) -> None:
        name = f"{self.prefix}-{len(self.shards):06d}.tar"
        self.shards.append(write_shard(self.out_dir / name, self._pending))
        self._pending = []

    def write(self, sample: dict[str, Any]) -> None:
        self._pending.append(sample)
        if len(self._pending) >= self.max_samples:
            self._flush()

    def close(self) -> list[ShardInfo]:
        if self._pending:
            self._flush()
        return self.shards

    def __enter__(self) -> ShardSeriesWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
