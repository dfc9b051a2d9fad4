"""Writing a file so that readers see the old version or the new one, never half of either.

Every writer of the project (configs, manifests, shards, checkpoints, image grids) goes through
:func:`atomic_file`: the bytes go to a hidden temporary file in the same directory, which is renamed over
the target only once it is complete. A failure on the way (a full disk, a kill) leaves the old file
untouched and removes the temporary one, so it does not go on taking space.

A file the user names (``--out``, ``--json``, ``--write-config``) is theirs to replace, as cp and curl -o do;
:func:`check_output_file` is the one check of such a name, made before any work.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_file(path: str | Path, *, text: bool = False, durable: bool = False) -> Iterator[IO]:
    """An open file whose contents replace ``path`` when the block ends without an exception.

    ``durable`` fsyncs before the rename (shards and checkpoints: a power cut must not leave a renamed
    file whose blocks never reached the disk).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w" if text else "wb") as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; the files we write are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_file(path, text=True) as f:
        f.write(text)


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = False) -> None:
    with atomic_file(path, durable=durable) as f:
        f.write(data)


def sweep_temporaries(directory: str | Path) -> list[Path]:
    """Remove the temporary files :func:`atomic_file` left in ``directory`` when its process was killed
    (``.<name>.<random>.tmp``; they are never renamed into place and only take space). Call it only on a
    directory we own, before its writer starts."""
    removed = []
    for path in Path(directory).glob(".*.tmp"):
        if path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def check_output_file(path: str | Path, option: str, suffixes: tuple[str, ...] = (), what: str = "") -> Path:
    """``path`` as a file to write, refused in one line before minutes of work: a name without one of
    ``suffixes`` (``what`` says what the file is: "a grid is a PNG file"), a directory, a missing folder."""
    from vaegan_dist.config.errors import ConfigError

    path = Path(path).expanduser()
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{option} {path}: {what}; its name ends in {' or '.join(suffixes)}")
    if path.is_dir():
        raise IsADirectoryError(f"{option} {path}: is a directory; name the file to write")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{option} {path}: output directory does not exist ({path.parent})")
    return path


def remove_staged(directory: str | Path, pattern: str) -> None:
    """Remove what a killed writer staged in ``directory`` under names matching ``pattern`` (a checkpoint being
    written, a checkpoint being adopted): directories with what they hold, links as links (never what they point
    to). Call it only on a directory we own, before its writer starts."""
    for stale in Path(directory).glob(pattern):
        if stale.is_symlink() or not stale.is_dir():
            stale.unlink(missing_ok=True)
        else:
            shutil.rmtree(stale, ignore_errors=True)
