"""Where shards come from: a shard directory or its manifest (local, NFS, http(s)://, s3://, gs://), or a
bare list of shards (a brace pattern such as ``/data/train-{000000..000099}.tar``, URLs, ``pipe:``
commands) whose format is then read off the first sample.

Manifests and shards are read by :mod:`vaegan_dist.data.remote` (pyarrow for s3:// and gs://, urllib for
http(s)://), never through a shell: shard URLs are the user's base URL plus shard names that the manifest
parser has checked to be plain ``{split}-NNNNNN.tar``. Local paths are made absolute, because Ray Train
workers run in a directory of their own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import webdataset as wds

from vaegan_dist.data.codec import decode_image_bytes
from vaegan_dist.data.manifest import (
    MANIFEST_NAME,
    DataError,
    Manifest,
    check_shard_name,
    parse_manifest,
    read_manifest,
)
from vaegan_dist.data.remote import read_bytes

REMOTE_SCHEMES = ("http://", "https://", "s3://", "gs://")
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "raw")


@dataclass(frozen=True)
class ShardSource:
    """What the reader needs: where the shards of one split are and how to decode their samples."""

    urls: list[str]
    attributes: list[str]
    image_encoding: str
    image_size: int
    splits: tuple[str, ...]  # the splits the source has (a bare shard list is one anonymous split)
    where: str  # for messages
    checksums: dict[str, str] = field(default_factory=dict)  # url -> sha256 from the manifest (none for a bare list)
    # The data set's identity (Manifest.fingerprint); for a bare shard list, a hash of its URLs.
    fingerprint: str = ""
    samples: int = 0  # images in the split, from the manifest (0: unknown, a bare shard list)


def is_remote(source: str) -> bool:
    return source.startswith(REMOTE_SCHEMES) or source.startswith("pipe:")


def _read_remote(url: str) -> str:
    try:
        return read_bytes(url).decode()
    except (OSError, ValueError) as err:
        raise DataError(f"{url}: cannot be read ({type(err).__name__}: {err})") from None


def _shard_url(base: str, split: str, name: str, where: str) -> str:
    return f"{base.rstrip('/')}/{check_shard_name(split, name, where)}"


def _from_manifest(manifest: Manifest, base: str, split: str, where: str) -> ShardSource:
    if split not in manifest.splits:
        raise DataError(f"{where}: split {split!r} is not in the manifest "
                        f"(it has {', '.join(manifest.splits) or 'none'})")
    shards = [s for s in manifest.shards(split) if s.samples > 0]  # a shard whose every image was skipped
    if not shards:
        raise DataError(f"{where}: split {split!r} has no samples")
    if base.startswith("pipe:"):  # unreachable from open_source; a manifest's URLs are never commands
        raise DataError(f"{where}: shards of a manifest cannot be read through pipe:")
    urls = [_shard_url(base, split, s.name, where) for s in shards]
    return ShardSource(urls, manifest.attributes, manifest.image_encoding, manifest.image_size,
                       tuple(manifest.splits), where, {url: s.sha256 for url, s in zip(urls, shards)},
                       manifest.fingerprint(), sum(s.samples for s in shards))


def _probe(urls: list[str], where: str) -> ShardSource:
    """Read the format of a bare shard list off its first sample."""
    from vaegan_dist.data.tarstream import tar_samples

    def reraise(exn: Exception) -> bool:
        raise exn

    try:
        sample = next(tar_samples(iter([{"url": urls[0]}]), handler=reraise))
    except StopIteration:
        raise DataError(f"{where}: the first shard holds no samples") from None
    except Exception as err:
        raise DataError(f"{where}: cannot read the first shard ({type(err).__name__}: {err})") from None
    encoding = next((ext for ext in IMAGE_EXTENSIONS if ext in sample), None)
    if encoding is None or encoding == "raw" or "json" not in sample:
        raise DataError(f"{where}: samples need an image (.png or .jpg) and a .json; found {sorted(sample)}")
    attributes = list(json.loads(sample["json"]).get("attributes", {}))
    image = decode_image_bytes(sample[encoding], encoding, None)
    fingerprint = hashlib.sha256("\n".join(urls).encode()).hexdigest()
    return ShardSource(urls, attributes, encoding, int(image.shape[-1]), ("",), where, fingerprint=fingerprint)


def open_source(source: str | Path | ShardSource, split: str = "train") -> ShardSource:
    """Resolve ``data.source`` for one split; raises :class:`DataError` naming the source at fault.
    A :class:`ShardSource` (resolved once by the driver) is returned as it is: no second trip."""
    if isinstance(source, ShardSource):
        return source
    return open_sources(source, split)[split]


def open_sources(source: str | Path, split: str, optional: Sequence[str] = ()) -> dict[str, ShardSource]:
    """``split`` and those of the ``optional`` splits the source has, from one read of its manifest (one
    round trip when it is remote). A bare shard list is one anonymous split: every name maps to it."""
    text = str(source)
    if "{" in text or text.endswith(".tar") or text.startswith("pipe:"):
        if not is_remote(text):
            text = str(Path(text).expanduser().absolute())
        urls = wds.shardlists.expand_urls(text)
        if not is_remote(text) and not Path(urls[0]).exists():
            raise DataError(f"{urls[0]}: no such shard")
        probed = _probe(urls, text)
        return {name: probed for name in (split, *optional)}
    if is_remote(text):
        url = text if text.endswith(".json") else f"{text.rstrip('/')}/{MANIFEST_NAME}"
        manifest, base, where = parse_manifest(_read_remote(url), url), url.rsplit("/", 1)[0], url
    else:
        path = Path(text).expanduser().absolute()
        manifest_file = path if path.suffix == ".json" else path / MANIFEST_NAME
        manifest, base, where = read_manifest(manifest_file), str(manifest_file.parent), str(manifest_file)
    present = [name for name in optional if name in manifest.splits and manifest.samples(name) > 0]
    return {name: _from_manifest(manifest, base, name, where) for name in (split, *present)}


def canonical(source: str) -> str:
    """The form of ``data.source`` handed to workers: local paths absolute, URLs unchanged."""
    return source if is_remote(source) else str(Path(source).expanduser().absolute())
