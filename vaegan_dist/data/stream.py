"""Streaming shards into a training worker: every rank gets exactly one batch per call, forever.

    shard URLs -> split by world rank, then by DataLoader worker -> resampled with a seeded RNG
    -> tar samples -> shuffle buffer -> decode to uint8 (+ optional flip and jitter) -> fixed-size batches

Shards are drawn with replacement from the rank's own subset, so the stream never runs dry and every
rank can take the same number of steps whatever the shard sizes: DDP cannot hang on uneven data.
Images stay uint8 until they reach the training device (4x less to copy than float32).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import IterableDataset, get_worker_info

from vaegan_dist.data.augment import Jitter
from vaegan_dist.data.codec import decode_image_bytes
from vaegan_dist.data.manifest import DataError
from vaegan_dist.data.sources import ShardSource, open_source
from vaegan_dist.data.tarstream import tar_samples

log = logging.getLogger(__name__)


def stable_seed(*parts: object) -> int:
    """A stable 64-bit seed from any parts (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def _worker() -> tuple[int, int]:
    info = get_worker_info()
    return (info.id, info.num_workers) if info is not None else (0, 1)


def shards_for(urls: list[str], rank: int, world_size: int, worker: int, num_workers: int) -> list[str]:
    """This (rank, worker)'s share of the shards: disjoint when there are enough shards to go round,
    otherwise the rank's share (or all shards), which the workers then resample independently."""
    if len(urls) >= world_size * num_workers:
        return urls[rank * num_workers + worker :: world_size * num_workers]
    if len(urls) >= world_size:
        return urls[rank::world_size]
    return urls


class ResampledRankShards(IterableDataset):
    """Endless ``{"url": ...}`` for this rank and DataLoader worker, drawn with a seeded RNG."""

    def __init__(self, urls: list[str], rank: int, world_size: int, seed: int, stream_id: int):
        super().__init__()
        self.urls, self.rank, self.world_size, self.seed, self.stream_id = urls, rank, world_size, seed, stream_id

    def __iter__(self) -> Iterator[dict[str, str]]:
        worker, num_workers = _worker()
        subset = shards_for(self.urls, self.rank, self.world_size, worker, num_workers)
        rng = random.Random(stable_seed("shards", self.seed, self.stream_id, self.rank, worker))
        while True:
            yield {"url": rng.choice(subset)}


class ErrorCounter:
    """Error handler for unreadable shards: count and log, then continue (webdataset's
    warn_and_continue sleeps 0.5 s per error)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, exn: Exception) -> bool:
        self.count += 1
        log.warning("skipped unreadable data (%d so far): %s", self.count, exn)
        return True


@dataclass
class Decode:
    """Sample dict -> (uint8 [3, S, S], uint8 [A] attributes), skipping and counting corrupt samples."""

    encoding: str
    attributes: list[str]
    image_size: int
    hflip: bool
    augment: bool
    seed: int
    stream_id: int
    rank: int

    def __call__(self, src: Iterator[dict]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        worker, _ = _worker()
        rng = np.random.default_rng(stable_seed("augment", self.seed, self.stream_id, self.rank, worker))
        jitter = Jitter() if self.augment else None
        errors = 0
        for sample in src:
            try:
                image = decode_image_bytes(sample[self.encoding], self.encoding, self.image_size)
                if image.shape != (3, self.image_size, self.image_size):
                    raise ValueError(f"image of shape {tuple(image.shape)}, expected 3x{self.image_size}x{self.image_size}")
                meta = json.loads(sample["json"])["attributes"]
                attrs = torch.tensor([int(meta[name]) for name in self.attributes], dtype=torch.uint8)
            except Exception as exn:  # a corrupt sample must not stop training
                errors += 1
                log.warning("skipped sample %s in %s (%d so far): %s", sample.get("__key__"), sample.get("__url__"),
                            errors, exn)
                continue
            if self.hflip and rng.random() < 0.5:
                image = image.flip(-1)
            if jitter is not None:
                image = jitter(image, rng)
            yield image, attrs


@dataclass
class SeededShuffle:
    bufsize: int
    seed: int
    stream_id: int
    rank: int

    def __call__(self, src: Iterator) -> Iterator:
        if self.bufsize <= 1:
            yield from src
            return
        worker, _ = _worker()
        rng = random.Random(stable_seed("shuffle", self.seed, self.stream_id, self.rank, worker))
        yield from wds.filters._shuffle(src, self.bufsize, initial=self.bufsize // 2, rng=rng)


def collate(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    images, attrs = zip(*samples)
    return torch.stack(images), torch.stack(attrs)


def check_image_size(source: ShardSource, image_size: int) -> None:
    if source.image_size != image_size:
        raise DataError(f"{source.where}: images are {source.image_size}px but data.image_size={image_size}; "
                        f"prepare the data at {image_size}px or set data.image_size={source.image_size}")


def training_stream(source: str | Path, split: str, image_size: int, batch_size: int, *, rank: int = 0,
                    world_size: int = 1, seed: int = 0, stream_id: int = 0, shuffle_buffer: int = 1000,
                    loader_workers: int = 0, hflip: bool = True,
                    augment: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An endless iterator of (uint8 images [B, 3, S, S], uint8 attributes [B, A]) for one rank.

    ``stream_id`` reseeds the stream; training passes the step it starts (or resumes) from, so a resumed
    run draws fresh data instead of replaying what it already saw.
    """
    src = open_source(source, split)
    check_image_size(src, image_size)
    pipeline = wds.DataPipeline(
        ResampledRankShards(src.urls, rank, world_size, seed, stream_id),
        functools.partial(tar_samples, handler=ErrorCounter()),
        SeededShuffle(shuffle_buffer, seed, stream_id, rank),
        Decode(src.image_encoding, src.attributes, image_size, hflip, augment, seed, stream_id, rank),
        wds.batched(batch_size, collation_fn=collate, partial=False),
    )
    if loader_workers == 0:
        return iter(pipeline)
    loader = wds.WebLoader(pipeline, batch_size=None, num_workers=loader_workers, prefetch_factor=4,
                           multiprocessing_context="forkserver", persistent_workers=False)
    return iter(loader)


def first_images(source: str | Path, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` samples of ``split`` in shard order: a fixed batch for reconstruction grids."""
    src = open_source(source, split)
    pipeline = wds.DataPipeline(
        wds.SimpleShardList(src.urls),
        functools.partial(tar_samples, handler=ErrorCounter()),
        Decode(src.image_encoding, src.attributes, src.image_size, False, False, 0, 0, 0),
    )
    samples = []
    for sample in pipeline:
        samples.append(sample)
        if len(samples) == n:
            break
    if not samples:
        raise DataError(f"{src.where}: split {split!r} yielded no readable images")
    return collate(samples)
