"""``vaegan-dist prepare celeba``: CelebA's standard layout -> webdataset shards, once, in parallel.

    ROOT/img_align_celeba/000001.jpg ...   the aligned 178x218 JPEGs
    ROOT/list_attr_celeba.txt              count; 40 attribute names; "000001.jpg -1  1 ..." per image
    ROOT/list_eval_partition.txt           "000001.jpg 0" per image: 0 train, 1 valid, 2 test

Bad entries (an unreadable or truncated image, a row with the wrong number of values, a file listed but
missing) are skipped, counted, named in the manifest and in the summary line; the conversion goes on.
Interrupted, it resumes (see :mod:`vaegan_dist.data.convert`).
"""

from __future__ import annotations

import os
from pathlib import Path

from vaegan_dist.data.convert import ConvertOptions, Entry, Skipped, run_conversion, shard_tasks
from vaegan_dist.data.manifest import DataError, Manifest
from vaegan_dist.data.preprocess import CROPS

IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
SPLITS = {"0": "train", "1": "valid", "2": "test"}


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path}: missing (CelebA's standard layout has {IMAGE_DIR}/, {ATTR_FILE}, {PARTITION_FILE})")
    return path


def read_attributes(path: Path) -> tuple[list[str], dict[str, list[int]], list[Skipped]]:
    """Attribute names and each image's values as 0/1; malformed rows are skipped and reported."""
    lines = _require_file(path).read_text().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise DataError(f"{path}:1: expected the number of images on the first line, got {(lines or [''])[0][:40]!r}")
    names = lines[1].split()
    if not names:
        raise DataError(f"{path}:2: expected the attribute names on the second line")
    rows, skipped = {}, []
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()  # runs of spaces separate the values
        if not parts:
            continue
        file, values = parts[0], parts[1:]
        if len(values) != len(names) or any(v not in ("1", "-1") for v in values):
            skipped.append(Skipped(file, f"{path.name}:{lineno}: {len(values)} values (expected {len(names)} of -1/1)"))
            continue
        rows[file] = [int(v == "1") for v in values]
    return names, rows, skipped


def read_partition(path: Path) -> tuple[dict[str, str], list[Skipped]]:
    split_of, skipped = {}, []
    for lineno, line in enumerate(_require_file(path).read_text().splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in SPLITS:
            skipped.append(Skipped(parts[0], f"{path.name}:{lineno}: expected '<file> 0|1|2'"))
            continue
        split_of[parts[0]] = SPLITS[parts[1]]
    return split_of, skipped


def plan(root: Path) -> tuple[list[str], dict[str, list[Entry]], list[Skipped]]:
    """Each split's usable (file, attributes) in file order (:func:`shard_tasks` shuffles them); unusable
    entries are reported, not fatal."""
    if not root.is_dir():
        raise DataError(f"{root}: no such directory")
    image_dir = root / IMAGE_DIR
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: missing "
                        f"(CelebA's standard layout has {IMAGE_DIR}/, {ATTR_FILE}, {PARTITION_FILE})")
    names, attributes, skipped = read_attributes(root / ATTR_FILE)
    split_of, bad_rows = read_partition(root / PARTITION_FILE)
    skipped += bad_rows
    already = {s.file for s in skipped}
    present = set(os.listdir(image_dir))
    per_split: dict[str, list[Entry]] = {split: [] for split in SPLITS.values()}
    for file in sorted(split_of):
        if file not in present:
            skipped.append(Skipped(file, "listed but missing"))
        elif file in attributes:
            per_split[split_of[file]].append((file, tuple(attributes[file])))
        elif file not in already:
            skipped.append(Skipped(file, f"not in {ATTR_FILE}"))
    return names, per_split, skipped


def prepare_celeba(root: Path, out: Path, size: int = 64, crop: str = "paper", shard_samples: int = 1000,
                   workers: int | None = None, encoding: str = "jpg", progress: bool = True) -> tuple[Manifest, str]:
    """Convert CelebA under ``root`` into shards under ``out``; returns the manifest and a summary line."""
    if crop not in CROPS:
        raise DataError(f"--crop {crop!r}: choose one of {', '.join(CROPS)}")
    root, out = Path(root).expanduser().resolve(), Path(out).expanduser().resolve()
    names, per_split, skipped = plan(root)
    opt = ConvertOptions(str(root / IMAGE_DIR), size, crop, encoding, tuple(names))
    return run_conversion(shard_tasks(per_split, shard_samples), opt, out, dataset="celeba", source=str(root),
                          skipped=skipped, workers=workers, progress=progress)
