"""``vaegan-dist prepare synthetic``: render the procedural faces into shards, in parallel.

Splits follow CelebA's shape: the first 80% of indices are ``train``, then 10% ``valid``, 10% ``test``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from vaegan_dist.atomic import sweep_temporaries
from vaegan_dist.data.codec import encode_image
from vaegan_dist.data.convert import check_options, worker_pool
from vaegan_dist.data.manifest import (
    MANIFEST_NAME,
    DataError,
    Manifest,
    claim_output_dir,
    read_manifest,
    write_manifest,
)
from vaegan_dist.data.shards import ShardSeriesWriter
from vaegan_dist.data.synthetic_faces import ATTRIBUTES, face

RENDER_VERSION = 2  # bump when the drawing changes, so cached data sets are rebuilt
SPLIT_FRACTIONS = (("train", 0.8), ("valid", 0.1), ("test", 0.1))


def split_ranges(num: int) -> dict[str, range]:
    n_train = int(num * SPLIT_FRACTIONS[0][1])
    n_valid = int(num * SPLIT_FRACTIONS[1][1])
    return {"train": range(0, n_train), "valid": range(n_train, n_train + n_valid),
            "test": range(n_train + n_valid, num)}


def _render(args: tuple[int, int, int, str]) -> dict:
    seed, index, size, encoding = args
    image, attributes = face(seed, index, size)
    return {"__key__": f"{index:08d}", encoding: encode_image(image, encoding),
            "json": {"attributes": attributes, "source": f"synthetic:{seed}:{index}"}}


def prepare_synthetic(out_dir: Path, num: int = 20000, size: int = 64, seed: int = 0, workers: int | None = None,
                      shard_samples: int = 1000, encoding: str = "png", progress: bool = True) -> Manifest:
    """Write ``num`` faces of ``size`` px as shards plus a manifest into ``out_dir``."""
    from tqdm import tqdm

    out_dir = Path(out_dir).expanduser().resolve()
    if (out_dir / MANIFEST_NAME).exists():
        raise DataError(f"{out_dir / MANIFEST_NAME}: a data set is already there; choose another --out")
    if num < 10:
        raise DataError(f"--num {num}: need at least 10 images (train/valid/test splits)")
    if shard_samples < 1:
        raise DataError(f"--shard-samples {shard_samples}: must be at least 1")
    check_options(size, workers)
    source = f"procedural faces v{RENDER_VERSION}, seed {seed}"
    claim_output_dir(out_dir, "synthetic", source)
    sweep_temporaries(out_dir)  # shards a killed run of this command was writing
    splits = {}
    with worker_pool(workers) as pool, tqdm(total=num, desc=f"faces {size}px", unit="img",
                                            disable=not progress) as bar:
        for split, indices in split_ranges(num).items():
            with ShardSeriesWriter(out_dir, split, shard_samples) as writer:
                jobs = ((seed, i, size, encoding) for i in indices)
                for sample in pool.map(_render, jobs, chunksize=64):
                    writer.write(sample)
                    bar.update()
            splits[split] = writer.shards
    manifest = Manifest(dataset="synthetic", image_size=size, image_encoding=encoding, attributes=list(ATTRIBUTES),
                        splits=splits, crop="none", source=source)
    write_manifest(manifest, out_dir)
    return manifest


def ensure_synthetic(cache_dir: Path, num: int, size: int, seed: int = 0, progress: bool = True) -> Path:
    """The cached built-in data set for (num, size, seed), rendered once; safe if two runs race."""
    cache_dir = Path(cache_dir).expanduser().resolve()
    final = cache_dir / f"synthetic-{size}px-{num}-seed{seed}-v{RENDER_VERSION}"
    if (final / MANIFEST_NAME).exists():
        read_manifest(final)
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{final.name}."))
    try:
        prepare_synthetic(staging, num=num, size=size, seed=seed, progress=progress)
        staging.chmod(0o755)  # mkdtemp makes it private; other users of a shared cache must read it
        try:
            os.rename(staging, final)
        except OSError:  # another process finished first; theirs is identical
            if not (final / MANIFEST_NAME).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def is_built_in(source: str | Path, cache_dir: str | Path) -> bool:
    """Is ``source`` a built-in data set that :func:`ensure_synthetic` rendered into ``cache_dir``?"""
    path = Path(str(source)).expanduser()
    return path.name.startswith("synthetic-") and path.parent.resolve() == Path(cache_dir).expanduser().resolve()
