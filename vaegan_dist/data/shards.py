"""Writing webdataset shards so that a shard is either whole under its final name or absent.

Each shard goes through :func:`vaegan_dist.atomic.atomic_file`: written under a hidden temporary name,
hashed on the way, fsynced and only then renamed; an interrupted writer never leaves a truncated ``.tar``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import webdataset as wds

from vaegan_dist.atomic import atomic_file
from vaegan_dist.data.manifest import ShardInfo

# A fixed member time makes shards byte-for-byte reproducible, so a resumed conversion can be checked.
TAR_MTIME = 1_600_000_000


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _Hashing:
    """A write-only file that hashes and counts what passes through it, so a shard is hashed while it is
    written instead of being read back."""

    def __init__(self, f: IO[bytes]):
        self.f, self.digest, self.size = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        return self.f.write(data)

    def flush(self) -> None:
        self.f.flush()


def write_shard(path: Path, samples: Iterable[dict[str, Any]]) -> ShardInfo:
    """Write one whole shard with :func:`~vaegan_dist.atomic.atomic_file` (fsynced before the rename)."""
    path = Path(path)
    count = 0
    with atomic_file(path, durable=True) as f:
        hashed = _Hashing(f)
        writer = wds.TarWriter(hashed, mtime=TAR_MTIME)
        for sample in samples:
            writer.write(sample)
            count += 1
        writer.close()
    return ShardInfo(path.name, count, hashed.digest.hexdigest(), hashed.size)


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
