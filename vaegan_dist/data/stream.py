"""Streaming shards into a training worker: every rank gets exactly one batch per call, forever.

    shard URLs -> split by world rank, then by DataLoader worker -> resampled with a seeded RNG
    -> tar samples, interleaved from several open shards (each checked against its manifest sha256)
    -> shuffle buffer -> decode to uint8 (+ optional flip and jitter) -> fixed-size batches

Shards are drawn with replacement from the rank's own subset, so the stream never runs dry and every
rank can take the same number of steps whatever the shard sizes: DDP cannot hang on uneven data.
Images stay uint8 until they reach the training device (4x less to copy than float32). Unreadable
shards and corrupt samples are skipped and counted; too many in a row end the stream with a one-line
:class:`DataError` (see :mod:`vaegan_dist.data.failures`), in the main process even when a DataLoader
worker found them. DataLoader workers die with their parent (:mod:`vaegan_dist.data.lifetime`).
"""

from __future__ import annotations

import hashlib
import json
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
from vaegan_dist.data.failures import Failures
from vaegan_dist.data.lifetime import die_with_parent
from vaegan_dist.data.manifest import DataError
from vaegan_dist.data.sources import ShardSource, open_source
from vaegan_dist.data.tarstream import tar_samples


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

    def __init__(self, urls: list[str], rank: int, world_size: int, seed: int, stream_id: int,
                 checksums: dict[str, str] | None = None):
        super().__init__()
        self.urls, self.rank, self.world_size, self.seed, self.stream_id = urls, rank, world_size, seed, stream_id
        self.checksums = checksums or {}

    def __iter__(self) -> Iterator[dict[str, str]]:
        worker, num_workers = _worker()
        subset = shards_for(self.urls, self.rank, self.world_size, worker, num_workers)
        rng = random.Random(stable_seed("shards", self.seed, self.stream_id, self.rank, worker))
        while True:
            yield shard_item(rng.choice(subset), self.checksums)


def shard_item(url: str, checksums: dict[str, str]) -> dict[str, str]:
    """What the tar reader takes: the URL and, when the manifest gave one, the sha256 to check."""
    return {"url": url, "sha256": checksums[url]} if url in checksums else {"url": url}


@dataclass
class Interleave:
    """``{"url"}`` items -> samples drawn at random from ``width`` shards open at once, so that a batch is
    not a run of consecutive files from one shard. Holds ``width`` whole shards in memory."""

    width: int
    failures: Failures
    seed: int
    stream_id: int
    rank: int

    def __call__(self, src: Iterator[dict]) -> Iterator[dict]:
        worker, _ = _worker()
        rng = random.Random(stable_seed("interleave", self.seed, self.stream_id, self.rank, worker))
        items = iter(src)
        readers: list[Iterator[dict]] = []
        while True:
            while len(readers) < max(1, self.width):
                item = next(items, None)
                if item is None:
                    break
                readers.append(tar_samples(iter([item]), handler=self.failures.shard_failed))
            if not readers:
                return
            i = rng.randrange(len(readers))
            sample = next(readers[i], None)
            if sample is None:  # that shard is done (or unreadable): open the next in its place
                readers.pop(i)
            else:
                yield sample


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
    failures: Failures | None = None

    def __call__(self, src: Iterator[dict]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        worker, _ = _worker()
        rng = np.random.default_rng(stable_seed("augment", self.seed, self.stream_id, self.rank, worker))
        jitter = Jitter() if self.augment else None
        failures = self.failures or Failures("the data source")
        for sample in src:
            try:
                image = decode_image_bytes(sample[self.encoding], self.encoding, self.image_size)
                if image.shape != (3, self.image_size, self.image_size):
                    raise ValueError(f"image of shape {tuple(image.shape)}, "
                                     f"expected 3x{self.image_size}x{self.image_size}")
                meta = json.loads(sample["json"])["attributes"]
                attrs = torch.tensor([int(meta[name]) for name in self.attributes], dtype=torch.uint8)
            except Exception as exn:  # a corrupt sample must not stop training (unless they all are)
                failures.sample_failed(sample.get("__key__"), sample.get("__url__"), exn)
                continue
            failures.ok()
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
        yield from wds.shuffle(self.bufsize, initial=self.bufsize // 2, rng=rng)(src)  # the public filter


def collate(samples: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    images, attrs = zip(*samples)
    return torch.stack(images), torch.stack(attrs)


def check_image_size(source: ShardSource, image_size: int) -> None:
    if source.image_size != image_size:
        raise DataError(f"{source.where}: images are {source.image_size}px but data.image_size={image_size}; "
                        f"prepare the data at {image_size}px or set data.image_size={source.image_size}")


def training_stream(source: str | Path | ShardSource, split: str, image_size: int, batch_size: int, *, rank: int = 0,
                    world_size: int = 1, seed: int = 0, stream_id: int = 0, shuffle_buffer: int = 1000,
                    loader_workers: int = 0, hflip: bool = True, augment: bool = False,
                    open_shards: int = 4) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """An endless iterator of (uint8 images [B, 3, S, S], uint8 attributes [B, A]) for one rank.

    ``source`` is ``data.source`` or what :func:`open_source` made of it. ``stream_id`` reseeds the stream;
    training passes the step it starts (or resumes) from, so a resumed run draws fresh data instead of
    replaying what it already saw. Each reader (the process, or each DataLoader worker) interleaves
    ``open_shards`` shards. Raises :class:`DataError` (one line) when the data turns out unreadable.
    """
    src = open_source(source, split)  # a ShardSource the driver resolved passes through as it is
    check_image_size(src, image_size)
    failures = Failures(src.where)
    pipeline = wds.DataPipeline(
        ResampledRankShards(src.urls, rank, world_size, seed, stream_id, src.checksums),
        Interleave(open_shards, failures, seed, stream_id, rank),
        SeededShuffle(shuffle_buffer, seed, stream_id, rank),
        Decode(src.image_encoding, src.attributes, image_size, hflip, augment, seed, stream_id, rank, failures),
        wds.batched(batch_size, collation_fn=collate, partial=False),
    )
    if loader_workers == 0:
        return iter(pipeline)
    loader = wds.WebLoader(pipeline, batch_size=None, num_workers=loader_workers, prefetch_factor=4,
                           multiprocessing_context="forkserver", persistent_workers=False,
                           worker_init_fn=die_with_parent())
    return one_line_errors(iter(loader))


def one_line_errors(batches: Iterator) -> Iterator:
    """Pass batches through; a DataError from a DataLoader worker, which torch re-raises here as
    "Caught DataError in DataLoader worker process 0. Original Traceback ...", becomes its one line again."""
    try:
        yield from batches
    except DataError as err:
        lines = [line for line in str(err).splitlines() if line.strip()]
        raise DataError(lines[-1].split("DataError: ", 1)[-1] if len(lines) > 1 else str(err)) from None


def images_in_order(source: str | Path | ShardSource, split: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every sample of ``split`` in shard order, unshuffled and unaugmented: (uint8 [3, S, S], uint8 [A])."""
    src = open_source(source, split)  # a ShardSource the driver resolved passes through as it is
    failures = Failures(src.where)
    items = (shard_item(url, src.checksums) for url in src.urls)
    decode = Decode(src.image_encoding, src.attributes, src.image_size, False, False, 0, 0, 0, failures)
    return decode(tar_samples(items, handler=failures.shard_failed))


def first_images(source: str | Path | ShardSource, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` samples of ``split`` in shard order: a fixed batch for reconstruction grids."""
    src = open_source(source, split)
    samples = []
    for sample in images_in_order(src, split):
        samples.append(sample)
        if len(samples) == n:
            break
    if not samples:
        raise DataError(f"{src.where}: split {split!r} yielded no readable images")
    return collate(samples)


def batches_in_order(source: str | Path | ShardSource, split: str, n: int, batch: int
                     ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The first ``n`` samples of ``split`` as batches of ``batch``, never all of them in memory at once."""
    pending = []
    for i, sample in enumerate(images_in_order(source, split)):
        if i == n:
            break
        pending.append(sample)
        if len(pending) == batch:
            yield collate(pending)
            pending = []
    if pending:
        yield collate(pending)
