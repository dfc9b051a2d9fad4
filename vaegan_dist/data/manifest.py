"""The manifest that travels with a set of shards: what is in them, and how to check they are whole.

Every writer (CelebA converter, image folder, procedural faces) produces the same format, so the reader
and the evaluation code never care where images came from.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vaegan_dist.atomic import atomic_write_text
from vaegan_dist.data.codec import IMAGE_ENCODINGS

MANIFEST_NAME = "manifest.json"
OWNER_NAME = ".vaegan-dist-data.json"  # written when a writer creates or claims its output directory
PROGRESS_DIR = ".progress"  # a resumable conversion's records of finished shards
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

    def fingerprint(self) -> str:
        """The data's identity: a sha256 over the image size, the attribute names and every shard's checksum
        by split. Two manifests of the same shards agree however they are formatted or where they live; an
        evaluator records it so that it is never used on data it was not trained for."""
        content = {"image_size": self.image_size, "attributes": self.attributes,
                   "splits": {split: [s.sha256 for s in shards] for split, shards in sorted(self.splits.items())}}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def write_manifest(manifest: Manifest, directory: Path) -> Path:
    path = Path(directory) / MANIFEST_NAME
    atomic_write_text(path, manifest.to_json())
    return path


def manifest_path(source: str | Path) -> Path:
    """A shard directory or its manifest file -> the manifest file."""
    path = Path(source).expanduser()
    return path if path.suffix == ".json" else path / MANIFEST_NAME


SPLIT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_JSON_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def check_shard_name(split: str, name: object, where: str) -> str:
    """A shard name from a manifest: a plain ``{split}-NNNNNN.tar`` (our writers' naming), nothing a URL,
    path or shell could read more into."""
    if not isinstance(name, str) or re.fullmatch(rf"{re.escape(split)}-[0-9]{{6,}}\.tar", name) is None:
        raise DataError(f"{where}: shard name {name!r} in split {split!r} is not a plain '{split}-NNNNNN.tar'")
    return name


def _field(raw: dict, key: str, kind: type, where: str, default: Any = ...) -> Any:
    if key not in raw:
        if default is ...:
            raise DataError(f"{where}: field {key!r} is missing")
        return default
    value = raw[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DataError(f"{where}: field {key!r} must be {_JSON_NAMES[kind]}, not {type(value).__name__} "
                        f"({str(value)[:40]!r})")
    return value


def _shard_info(split: str, index: int, raw: object, where: str) -> ShardInfo:
    at = f"{where}: splits.{split}[{index}]"
    if not isinstance(raw, dict):
        raise DataError(f"{at} must be an object with name, samples, sha256, bytes")
    unknown = set(raw) - {"name", "samples", "sha256", "bytes"}
    if unknown:
        raise DataError(f"{at}: unknown field(s) {', '.join(sorted(unknown))}")
    name = check_shard_name(split, raw.get("name"), where)
    samples, size = _field(raw, "samples", int, at), _field(raw, "bytes", int, at)
    sha256 = _field(raw, "sha256", str, at)
    if samples < 0 or size < 0 or _SHA256.fullmatch(sha256) is None:
        raise DataError(f"{at}: samples and bytes must be >= 0 and sha256 64 hex digits")
    return ShardInfo(name, samples, sha256, size)


def parse_manifest(text: str, where: str) -> Manifest:
    """A manifest from its JSON text, every field checked; ``where`` names it in errors."""
    try:
        raw: dict[str, Any] = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{where}: not valid JSON ({err})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DataError(f"{where}: format {raw.get('format') if isinstance(raw, dict) else None!r} is not {FORMAT!r}")
    unknown = set(raw) - {f.name for f in fields(Manifest)}
    if unknown:
        raise DataError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    splits = _field(raw, "splits", dict, where)
    for split in splits:
        if SPLIT_NAME.fullmatch(split) is None:
            raise DataError(f"{where}: split name {split!r} is not a plain identifier")
        if not isinstance(splits[split], list):
            raise DataError(f"{where}: field 'splits.{split}' must be a list of shards, "
                            f"not {type(splits[split]).__name__}")
    image_size = _field(raw, "image_size", int, where)
    encoding = _field(raw, "image_encoding", str, where)
    attributes = _field(raw, "attributes", list, where)
    if (not 1 <= image_size <= 65536 or encoding not in IMAGE_ENCODINGS
            or not all(isinstance(a, str) for a in attributes)):
        raise DataError(f"{where}: image_size {image_size}, image_encoding {encoding!r} or attributes are not valid")
    skipped = _field(raw, "skipped", list, where, [])
    return Manifest(dataset=_field(raw, "dataset", str, where), image_size=image_size, image_encoding=encoding,
                    attributes=attributes,
                    splits={k: [_shard_info(k, i, s, where) for i, s in enumerate(v)] for k, v in splits.items()},
                    crop=_field(raw, "crop", str, where, ""), source=_field(raw, "source", str, where, ""),
                    skipped=skipped)


def read_manifest(source: str | Path) -> Manifest:
    path = manifest_path(source)
    if not path.parent.is_dir():
        raise DataError(f"{path.parent}: no such data directory")
    if not path.exists():
        raise DataError(f"{path}: no manifest here (create shards with `vaegan-dist prepare ...`)")
    return parse_manifest(path.read_text(), str(path))


def claim_output_dir(out: Path, dataset: str, source: str) -> None:
    """Make ``out`` a writer's own before anything is written into it; refuse any other directory.

    Ours: ``out`` does not exist yet, is empty, or holds our manifest or ownership record of the same data
    set (a rerun, or the resume of an interrupted conversion; a ``.progress`` of records from before the
    ownership record existed also counts). Anything else is a user's directory and is never written to.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory; choose another --out")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    owner = {"dataset": dataset, "source": source}
    if entries:
        if (out / MANIFEST_NAME).exists():
            try:
                existing = read_manifest(out)
            except DataError:
                existing = None
            if existing is None or (existing.dataset, existing.source) != (dataset, source):
                raise DataError(f"{out / MANIFEST_NAME}: holds another data set; choose another --out")
        elif (out / OWNER_NAME).exists():
            try:
                claimed = json.loads((out / OWNER_NAME).read_text())
            except (OSError, ValueError):
                claimed = None
            if claimed != owner:
                raise DataError(f"{out}: holds an unfinished conversion of another data set ({claimed}); "
                                "choose another --out")
        elif not _legacy_conversion_of(out, source):
            shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
            raise DataError(f"{out}: not empty ({shown}) and not a data set of ours; choose a new or empty --out")
    out.mkdir(parents=True, exist_ok=True)
    if not (out / OWNER_NAME).exists():
        atomic_write_text(out / OWNER_NAME, json.dumps(owner))


def _legacy_conversion_of(out: Path, source: str) -> bool:
    """An interrupted conversion from ``source`` started before ownership records: our progress records."""
    for record in sorted((out / PROGRESS_DIR).glob("*.json"))[:1]:
        try:
            root = json.loads(record.read_text())["options"]["image_root"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return isinstance(root, str) and (root == source or Path(root).parent == Path(source))
    return False
