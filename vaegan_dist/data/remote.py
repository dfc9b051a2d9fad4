"""Reading the bytes behind a data URL, with no shell and no command-line tool in between.

    local path, file://   open() / pyarrow's LocalFileSystem
    http://, https://     urllib, with a timeout
    s3://, gs://          pyarrow.fs (installed with Ray), which streams objects natively
    pipe:CMD              ``sh -c CMD``: only ever a command the user typed as ``data.source``

Strings read from a manifest never get here as a ``pipe:``: :mod:`vaegan_dist.data.sources` builds shard
URLs only from the user's base URL and shard names that :mod:`vaegan_dist.data.manifest` has validated.
"""

from __future__ import annotations

import functools
import subprocess
import urllib.parse
import urllib.request

HTTP_SCHEMES = ("http://", "https://")
OBJECT_STORE_SCHEMES = ("s3://", "gs://")
TIMEOUT_S = 60.0


@functools.lru_cache(maxsize=16)
def _filesystem(root: str):
    """pyarrow's filesystem for ``scheme://bucket`` (one client per bucket and process) and the bucket path."""
    from pyarrow import fs

    return fs.FileSystem.from_uri(root)


def _object_store(url: str):
    parts = urllib.parse.urlsplit(url)
    if parts.query:  # options such as ?region=...: let pyarrow read the whole URI
        from pyarrow import fs

        return fs.FileSystem.from_uri(url)
    filesystem, bucket = _filesystem(f"{parts.scheme}://{parts.netloc}")
    return filesystem, f"{bucket.rstrip('/')}/{parts.path.lstrip('/')}"


def read_bytes(url: str, timeout: float = TIMEOUT_S) -> bytes:
    """The whole object at ``url``. Raises OSError (or ValueError for a URL it cannot parse)."""
    if url.startswith(HTTP_SCHEMES):
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read()
    if url.startswith(OBJECT_STORE_SCHEMES):
        filesystem, path = _object_store(url)
        with filesystem.open_input_stream(path) as stream:
            return stream.read()
    if url.startswith("file://"):
        from pyarrow import fs

        with fs.LocalFileSystem().open_input_stream(urllib.request.url2pathname(urllib.parse.urlsplit(url).path)) as f:
            return f.read()
    if url.startswith("pipe:"):
        result = subprocess.run(["sh", "-c", url[len("pipe:"):]], capture_output=True)
        if result.returncode != 0:
            raise OSError(f"command exited with status {result.returncode}: "
                          f"{result.stderr.decode(errors='replace').strip()[-200:]}")
        return result.stdout
    if "://" in url:
        raise ValueError(f"unsupported URL scheme {url.split('://', 1)[0]!r} (use a path, file://, http(s)://, "
                         "s3:// or gs://)")
    with open(url, "rb") as f:
        return f.read()
