"""The manifest that travels with a set of shards: what is in them, and how to check they are whole.

Every writer (CelebA converter, image folder, procedural faces) produces the same format, so the reader
and the evaluation code never care where images came from.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from vaegan_dist.config.io import atomic_write_text

MANIFEST_NAME = "manifest.json"
FORMAT = "vaegan-dist-shards/1"


class DataError(ValueError):
    """Bad or missing data; the message is one line naming the file or value at fault."""


@dataclass
class ShardInfo:
    name: str  # file name relative to the manifest's directory
    samples: int
    sha256: str
    bytes: int


@dataclass
class Manifest:
    dataset: str  # "synthetic", "celeba", "folder"
    image_size: int
    image_encoding: str  # the extension of the image field in every sample: "png" or "jpg"
    attributes: list[str]
    splits: dict[str, list[ShardInfo]]
    crop: str = ""
    source: str = ""
    skipped: list[dict[str, str]] = field(default_factory=list)
    format: str = FORMAT

    def samples(self, split: str) -> int:
        return sum(s.samples for s in self.shards(split))

    def shards(self, split: str) -> list[ShardInfo]:
        if split not in self.splits:
            raise DataError(f"split {split!r} is not in the manifest (it has {', '.join(self.splits) or 'none'})")
        return self.splits[split]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def write_manifest(manifest: Manifest, directory: Path) -> Path:
    path = Path(directory) / MANIFEST_NAME
    atomic_write_text(path, manifest.to_json())
    return path


def manifest_path(source: str | Path) -> Path:
    """A shard directory or its manifest file -> the manifest file."""
    path = Path(source).expanduser()
    return path if path.suffix == ".json" else path / MANIFEST_NAME


def parse_manifest(text: str, where: str) -> Manifest:
    """A manifest from its JSON text; ``where`` names it in errors."""
    try:
        raw: dict[str, Any] = json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DataError(f"{where}: format {raw.get('format') if isinstance(raw, dict) else None!r} is not {FORMAT!r}")
    try:
        splits = {k: [ShardInfo(**s) for s in v] for k, v in raw.pop("splits").items()}
        return Manifest(splits=splits, **raw)
    except (KeyError, TypeError) as err:
        raise DataError(f"{where}: malformed manifest ({err})") from None


def read_manifest(source: str | Path) -> Manifest:
    path = manifest_path(source)
    if not path.parent.is_dir():
        raise DataError(f"{path.parent}: no such data directory")
    if not path.exists():
        raise DataError(f"{path}: no manifest here (create shards with `vaegan-dist prepare ...`)")
    return parse_manifest(path.read_text(), str(path))
