"""Where shards come from: a shard directory or its manifest (local, NFS, http(s)://, s3://, gs://), or a
bare list of shards (a brace pattern such as ``/data/train-{000000..000099}.tar``, URLs, ``pipe:``
commands) whose format is then read off the first sample.

webdataset opens http(s) through ``curl`` and gs:// through ``gsutil``; it has no s3:// opener, so s3
shards are read through ``pipe:aws s3 cp URL -``. Local paths are made absolute, because Ray Train
workers run in a directory of their own.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import webdataset as wds

from vaegan_dist.data.codec import decode_image_bytes
from vaegan_dist.data.manifest import MANIFEST_NAME, DataError, Manifest, parse_manifest, read_manifest

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


def is_remote(source: str) -> bool:
    return source.startswith(REMOTE_SCHEMES) or source.startswith("pipe:")


def _read_remote(url: str, timeout: float = 60.0) -> str:
    try:
        if url.startswith(("http://", "https://")):
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return response.read().decode()
        command = (["aws", "s3", "cp", url, "-"] if url.startswith("s3://") else
                   ["gsutil", "cat", url] if url.startswith("gs://") else ["sh", "-c", url[len("pipe:"):]])
        return subprocess.run(command, capture_output=True, check=True, timeout=timeout).stdout.decode()
    except (OSError, subprocess.SubprocessError) as err:
        raise DataError(f"{url}: cannot be read ({type(err).__name__}: {err})") from None


def _shard_url(base: str, name: str) -> str:
    url = f"{base.rstrip('/')}/{name}"
    return f"pipe:aws s3 cp {url} -" if url.startswith("s3://") else url


def _from_manifest(manifest: Manifest, base: str, split: str, where: str) -> ShardSource:
    if split not in manifest.splits:
        raise DataError(f"{where}: split {split!r} is not in the manifest (it has {', '.join(manifest.splits) or 'none'})")
    shards = manifest.shards(split)
    if not shards:
        raise DataError(f"{where}: split {split!r} has no shards")
    return ShardSource([_shard_url(base, s.name) for s in shards], manifest.attributes, manifest.image_encoding,
                       manifest.image_size, tuple(manifest.splits), where)


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
    return ShardSource(urls, attributes, encoding, int(image.shape[-1]), ("",), where)


def open_source(source: str | Path, split: str = "train") -> ShardSource:
    """Resolve ``data.source`` for one split; raises :class:`DataError` naming the source at fault.
    A :class:`ShardSource` (resolved once by the driver) is returned as it is: no second trip."""
    if isinstance(source, ShardSource):
        return source
    text = str(source)
    if "{" in text or text.endswith(".tar") or text.startswith("pipe:"):
        if not is_remote(text):
            text = str(Path(text).expanduser().absolute())
        urls = wds.shardlists.expand_urls(text)
        if not is_remote(text) and not Path(urls[0]).exists():
            raise DataError(f"{urls[0]}: no such shard")
        return _probe(urls, text)
    if is_remote(text):
        url = text if text.endswith(".json") else f"{text.rstrip('/')}/{MANIFEST_NAME}"
        return _from_manifest(parse_manifest(_read_remote(url), url), url.rsplit("/", 1)[0], split, url)
    path = Path(text).expanduser().absolute()
    manifest_file = path if path.suffix == ".json" else path / MANIFEST_NAME
    return _from_manifest(read_manifest(manifest_file), str(manifest_file.parent), split, str(manifest_file))


def canonical(source: str) -> str:
    """The form of ``data.source`` handed to workers: local paths absolute, URLs unchanged."""
    return source if is_remote(source) else str(Path(source).expanduser().absolute())
