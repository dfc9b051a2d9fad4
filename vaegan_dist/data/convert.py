"""Resumable, parallel conversion of image files into shards: the engine behind ``prepare celeba`` and
``prepare folder``.

Shards are planned deterministically (each split's entries shuffled with a fixed seed, so that a shard
holds a mix of the whole split rather than a run of neighbouring files such as one class folder;
``shard_samples`` per shard) and each is written whole by one process, under a temporary name first. A
record of every finished shard
(its checksum, its skipped entries and the options it was made with) lives in ``OUT/.progress``; rerun
with the same arguments, a conversion verifies finished shards against their records, keeps them, and
writes the rest. An image that cannot be read (or is too large to decode safely) is skipped and reported;
it never stops the conversion. The output directory must be new, empty or ours
(:func:`vaegan_dist.data.manifest.claim_output_dir`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from vaegan_dist.atomic import atomic_write_text, sweep_temporaries
from vaegan_dist.data.codec import IMAGE_ENCODINGS, encode_image
from vaegan_dist.data.lifetime import die_with_parent
from vaegan_dist.data.manifest import (
    MANIFEST_NAME,
    PROGRESS_DIR,
    DataError,
    Manifest,
    ShardInfo,
    claim_output_dir,
    write_manifest,
)
from vaegan_dist.data.preprocess import load_image
from vaegan_dist.data.shards import sha256_of, write_shard

SIZE_RANGE = (8, 1024)  # image side in pixels; 1024 px images are 3 MB each, larger is not what this is for
MAX_WORKERS = 256
Entry = tuple[str, tuple[int, ...]]  # (image path relative to the image root, 0/1 attribute values)


@dataclass(frozen=True)
class Skipped:
    file: str  # the image, or the list file and line, at fault
    reason: str


@dataclass(frozen=True)
class ShardTask:
    split: str
    index: int
    entries: tuple[Entry, ...]

    @property
    def name(self) -> str:
        return f"{self.split}-{self.index:06d}.tar"


@dataclass(frozen=True)
class ConvertOptions:
    image_root: str
    size: int
    crop: str
    encoding: str
    attribute_names: tuple[str, ...]


def shard_tasks(per_split: dict[str, Sequence[Entry]], shard_samples: int, seed: int = 0) -> list[ShardTask]:
    """Each split's entries, shuffled with a seed of (``seed``, split), cut into shards of ``shard_samples``."""
    if shard_samples < 1:
        raise DataError(f"--shard-samples {shard_samples}: must be at least 1")
    tasks = []
    for split, entries in per_split.items():
        entries = list(entries)
        random.Random(f"vaegan-dist shards {seed} {split}").shuffle(entries)
        tasks += [ShardTask(split, i // shard_samples, tuple(entries[i : i + shard_samples]))
                  for i in range(0, len(entries), shard_samples)]
    return tasks


def check_options(size: int, workers: int | None) -> None:
    if not SIZE_RANGE[0] <= size <= SIZE_RANGE[1]:
        raise DataError(f"--size {size}: choose {SIZE_RANGE[0]}..{SIZE_RANGE[1]} pixels")
    if workers is not None and not 1 <= workers <= MAX_WORKERS:
        raise DataError(f"--workers {workers}: choose 1..{MAX_WORKERS}")


def first_skipped(skipped: Sequence[Skipped]) -> str:
    return f"skipped {len(skipped)}" + (f", the first {skipped[0].file}: {skipped[0].reason}" if skipped else "")


def _samples(task: ShardTask, opt: ConvertOptions, skipped: list[Skipped]) -> Iterator[dict]:
    for file, values in task.entries:
        try:
            image = load_image(Path(opt.image_root) / file, opt.crop, opt.size)
        except Exception as err:  # truncated, unreadable, wrong size, too large: skip it, keep converting
            skipped.append(Skipped(file, f"unreadable image ({type(err).__name__}: {err})"))
            continue
        key = str(Path(file).with_suffix("")).replace("/", "__").replace(".", "_")  # webdataset splits keys at dots
        yield {"__key__": key, opt.encoding: encode_image(image, opt.encoding),
               "json": {"attributes": dict(zip(opt.attribute_names, values)), "source": file}}


def convert_shard(task: ShardTask, opt: ConvertOptions, out: str) -> tuple[ShardInfo, list[Skipped], bool]:
    """Write one shard, or keep it if a record from an earlier run verifies. Returns (info, skipped, kept)."""
    shard, record_path = Path(out) / task.name, Path(out) / PROGRESS_DIR / f"{task.name}.json"
    expected = {"options": asdict(opt), "entries": [list(e[:1]) + [list(e[1])] for e in task.entries]}
    if shard.exists() and record_path.exists():
        try:
            record = json.loads(record_path.read_text())
            info = ShardInfo(**record["shard"])
            if {k: record[k] for k in expected} == json.loads(json.dumps(expected)) and sha256_of(shard) == info.sha256:
                return info, [Skipped(**s) for s in record["skipped"]], True
        except (ValueError, KeyError, TypeError):
            pass  # a damaged record: rewrite the shard
    skipped: list[Skipped] = []
    info = write_shard(shard, _samples(task, opt, skipped))
    atomic_write_text(record_path, json.dumps({"shard": asdict(info), "skipped": [asdict(s) for s in skipped],
                                               **expected}))
    return info, skipped, False


class _InProcess:
    """``map`` in this process, for one worker: no pool to start (and tests/unit starts no process)."""

    @staticmethod
    def map(fn: Callable, *iterables, chunksize: int = 1) -> Iterator:
        return map(fn, *iterables)


@contextlib.contextmanager
def worker_pool(workers: int | None) -> Iterator[ProcessPoolExecutor | _InProcess]:
    """The processes that convert or render images: ``workers`` of them (default: the CPUs, 8 at most), each
    ending with this process; with one, the work runs here."""
    count = workers or min(8, os.cpu_count() or 1)
    if count == 1:
        yield _InProcess()
        return
    with ProcessPoolExecutor(max_workers=count, initializer=die_with_parent()) as pool:
        yield pool


def run_conversion(tasks: list[ShardTask], opt: ConvertOptions, out: Path, *, dataset: str, source: str,
                   skipped: list[Skipped], workers: int | None, progress: bool) -> tuple[Manifest, str]:
    """Convert every task in parallel, then write the manifest; returns it and a one-line summary."""
    from tqdm import tqdm

    if opt.encoding not in IMAGE_ENCODINGS:
        raise DataError(f"--encoding {opt.encoding!r}: choose one of {', '.join(IMAGE_ENCODINGS)}")
    check_options(opt.size, workers)
    if not any(task.entries for task in tasks):
        raise DataError(f"{source}: no usable images; {first_skipped(skipped)}")
    claim_output_dir(out, dataset, source)
    sweep_temporaries(out)  # shards a killed conversion was writing
    splits: dict[str, list[ShardInfo]] = {}
    for task in tasks:
        splits.setdefault(task.split, [])
    skipped = list(skipped)
    kept = 0
    with worker_pool(workers) as pool, tqdm(
        total=sum(len(t.entries) for t in tasks), desc=f"{dataset} {opt.size}px", unit="img", disable=not progress
    ) as bar:
        results = pool.map(convert_shard, tasks, [opt] * len(tasks), [str(out)] * len(tasks))
        for task, (info, shard_skipped, was_kept) in zip(tasks, results):
            splits[task.split].append(info)
            skipped += shard_skipped
            kept += was_kept
            bar.update(len(task.entries))
    if not any(info.samples for infos in splits.values() for info in infos):
        raise DataError(f"{source}: no image could be converted; {first_skipped(skipped)}")
    manifest = Manifest(dataset=dataset, image_size=opt.size, image_encoding=opt.encoding,
                        attributes=list(opt.attribute_names), splits=splits, crop=opt.crop, source=source,
                        skipped=[asdict(s) for s in skipped])
    write_manifest(manifest, out)
    reasons = Counter(s.reason.split(" (")[0].split(": ")[-1] for s in skipped)
    summary = (f"wrote {sum(manifest.samples(s) for s in splits)} images to {out / MANIFEST_NAME} "
               f"({', '.join(f'{s} {manifest.samples(s)}' for s in splits)}; {len(tasks)} shards, {kept} verified "
               f"and kept from an earlier run); skipped {len(skipped)}"
               + (f": {', '.join(f'{n} {r}' for r, n in reasons.items())} (listed in the manifest)" if skipped else ""))
    return manifest, summary
