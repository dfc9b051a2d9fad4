"""Where a run's files live: a local or NFS directory, or a URL (s3://, gs://, file://) that Ray Train
also uses for checkpoints.

With a local path everything is written in place. With a URL, rank 0 writes TensorBoard events and
sample grids into a local staging directory and uploads them with pyarrow (the filesystem layer Ray uses)
after every checkpoint and at the end, so a lost node loses at most one checkpoint interval of logs.
"""

from __future__ import annotations

import re
from pathlib import Path

from vaegan_dist.config.io import atomic_write_text

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
STAGING = Path("~/vaegan-dist/staging")


def is_url(path: str) -> bool:
    return bool(_URL.match(path))


class RunStorage:
    """One run's directory: ``storage_path/name``."""

    def __init__(self, storage_path: str, name: str):
        self.storage_path, self.name = storage_path, name
        self.remote = is_url(storage_path)
        self.url = f"{storage_path.rstrip('/')}/{name}"
        self.local_dir = (STAGING.expanduser() / name) if self.remote else Path(storage_path) / name

    def _fs(self):
        import pyarrow.fs

        fs, root = pyarrow.fs.FileSystem.from_uri(self.url)
        return fs, root

    def write_text(self, relative: str, text: str) -> None:
        if not self.remote:
            atomic_write_text(self.local_dir / relative, text)
            return
        fs, root = self._fs()
        fs.create_dir(root, recursive=True)
        with fs.open_output_stream(f"{root}/{relative}") as f:  # object stores replace objects atomically
            f.write(text.encode())

    def read_text(self, relative: str) -> str | None:
        if not self.remote:
            path = self.local_dir / relative
            return path.read_text() if path.exists() else None
        import pyarrow.fs

        fs, root = self._fs()
        if fs.get_file_info(f"{root}/{relative}").type == pyarrow.fs.FileType.NotFound:
            return None
        with fs.open_input_stream(f"{root}/{relative}") as f:
            return f.read().decode()

    def upload(self, *relative_dirs: str) -> None:
        """Copy staged directories to the URL (no-op for local storage)."""
        if not self.remote:
            return
        import pyarrow.fs

        fs, root = self._fs()
        for relative in relative_dirs:
            source = self.local_dir / relative
            if source.exists():
                fs.create_dir(f"{root}/{relative}", recursive=True)
                pyarrow.fs.copy_files(str(source), f"{root}/{relative}", source_filesystem=pyarrow.fs.LocalFileSystem(),
                                      destination_filesystem=fs)
