"""``vaegan-dist prepare folder``: any folder of images (recursive; jpg, png, webp) -> shards.

Images get a centred square crop and a resize. Splits are drawn from a hash of each file's relative path
(90% train, 5% valid, 5% test), so adding images later does not move the existing ones between splits.
Optional attributes come from a CSV: a header ``file,<name>,<name>,...`` and one row per image, ``file``
being the path relative to the root, values 0/1 (or -1/1 as in CelebA).
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from vaegan_dist.data.convert import ConvertOptions, Entry, Skipped, run_conversion, shard_tasks
from vaegan_dist.data.manifest import DataError, Manifest

EXTENSIONS = {".jpg", ".jpeg", ".png", ".webp"}


def split_for(relative: str) -> str:
    bucket = int.from_bytes(hashlib.sha256(relative.encode()).digest()[:2], "little") % 100
    return "valid" if bucket < 5 else "test" if bucket < 10 else "train"


def read_attribute_csv(path: Path) -> tuple[list[str], dict[str, tuple[int, ...]], list[Skipped]]:
    if not path.is_file():
        raise DataError(f"{path}: no such attributes file")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or len(rows[0]) < 2 or rows[0][0].strip().lower() != "file":
        raise DataError(f"{path}:1: expected a header 'file,<attribute>,...'")
    names = [n.strip() for n in rows[0][1:]]
    values, skipped = {}, []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        cells = [c.strip() for c in row[1:]]
        if len(cells) != len(names) or any(c not in ("0", "1", "-1") for c in cells):
            skipped.append(Skipped(row[0], f"{path.name}:{lineno}: {len(cells)} values (expected {len(names)} of 0/1)"))
            continue
        values[row[0].strip()] = tuple(int(c == "1") for c in cells)
    return names, values, skipped


def prepare_folder(root: Path, out: Path, size: int = 64, attributes: Path | None = None, shard_samples: int = 1000,
                   workers: int | None = None, encoding: str = "jpg", progress: bool = True) -> tuple[Manifest, str]:
    root, out = Path(root).expanduser().resolve(), Path(out).expanduser().resolve()
    if not root.is_dir():
        raise DataError(f"{root}: no such directory")
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*")
                   if p.suffix.lower() in EXTENSIONS and p.is_file() and out not in p.parents)
    if not files:
        raise DataError(f"{root}: no images ({', '.join(sorted(EXTENSIONS))}) found")
    names, values, skipped = read_attribute_csv(Path(attributes).expanduser()) if attributes else ([], {}, [])
    per_split: dict[str, list[Entry]] = {"train": [], "valid": [], "test": []}
    for file in files:
        if attributes and file not in values:
            skipped.append(Skipped(file, "not in the attributes file"))
            continue
        per_split[split_for(file)].append((file, values.get(file, ())))
    opt = ConvertOptions(str(root), size, "center", encoding, tuple(names))
    return run_conversion(shard_tasks(per_split, shard_samples), opt, out, dataset="folder", source=str(root),
                          skipped=skipped, workers=workers, progress=progress)
