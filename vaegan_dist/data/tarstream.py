"""A fast reader for the tar shards: whole shard in memory, headers parsed with ``struct``.

Python's ``tarfile`` spends ~60 us per member on header objects and checksums, more than decoding a
64 px JPEG; shards are a few MB, so reading one whole and slicing members out of it is both simpler and
~10x cheaper per sample. Grouping follows webdataset: the key is the member path up to the first dot of
its file name, the rest is the field name. Handles ustar names with a prefix, GNU long names ('L') and
pax path records ('x'); other member types (directories, links) are skipped. A shard whose expected
sha256 came with its URL (from the manifest) is checked before any of its samples is used.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator

from vaegan_dist.data.remote import read_bytes

BLOCK = 512
_SPLIT_KEY = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")


def _octal(field: bytes) -> int:
    field = field.rstrip(b"\0 ").lstrip(b" ")
    return int(field, 8) if field else 0


def tar_members(data: bytes) -> Iterator[tuple[str, memoryview]]:
    """(path, contents) of the regular files in a tar archive held in memory."""
    view = memoryview(data)
    offset, long_name = 0, None
    while offset + BLOCK <= len(data):
        header = data[offset : offset + BLOCK]
        if header[0] == 0:  # end-of-archive marker
            return
        size = _octal(header[124:136])
        kind = header[156:157]
        start, end = offset + BLOCK, offset + BLOCK + size
        if end > len(data):
            raise ValueError(f"truncated member at byte {offset} ({size} bytes announced)")
        offset = start + (size + BLOCK - 1) // BLOCK * BLOCK
        if kind == b"L":
            long_name = bytes(view[start:end]).rstrip(b"\0").decode()
            continue
        if kind == b"x":
            for record in bytes(view[start:end]).decode().splitlines():
                _, _, item = record.partition(" ")
                if item.startswith("path="):
                    long_name = item[len("path="):]
            continue
        if kind not in (b"0", b"\0"):
            long_name = None
            continue
        name = long_name or header[0:100].split(b"\0", 1)[0].decode()
        prefix = header[345:500].split(b"\0", 1)[0].decode() if header[257:262] == b"ustar" else ""
        if prefix and not long_name:
            name = f"{prefix}/{name}"
        long_name = None
        yield name, view[start:end]


class ChecksumMismatch(ValueError):
    """A shard's bytes do not hash to the sha256 its manifest records."""


def read_shard(url: str, sha256: str | None = None) -> bytes:
    """The whole shard at ``url``, checked against ``sha256`` when one is given."""
    data = read_bytes(url)
    if sha256 is not None:
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise ChecksumMismatch(f"sha256 {actual[:12]}... but the manifest records {sha256[:12]}...")
    return data


def tar_samples(src: Iterator[dict], handler: Callable[[Exception], bool]) -> Iterator[dict]:
    """Pipeline stage: ``{"url": ..., "sha256": ... (optional)}`` -> webdataset-style samples
    ``{"__key__", "__url__", ext: bytes}``."""
    for item in src:
        url = item["url"]
        try:
            data = read_shard(url, item.get("sha256"))
            current: dict | None = None
            for name, contents in tar_members(data):
                match = _SPLIT_KEY.match(name)
                if match is None:
                    continue
                key, field = match.groups()
                if current is not None and current["__key__"] != key:
                    yield current
                    current = None
                if current is None:
                    current = {"__key__": key, "__url__": url}
                current[field] = bytes(contents)
            if current is None:
                raise ValueError("no samples in this shard")
            yield current
        except Exception as exn:  # unreadable or truncated shard: report, then go on with the next
            exn.args = (*exn.args, url)
            if not handler(exn):
                raise
