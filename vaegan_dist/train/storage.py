"""Where a run's files live: a local or NFS directory, or a URL (s3://, gs://, file://) that Ray Train
also uses for checkpoints.

With a local path everything is written in place. With a URL, rank 0 writes TensorBoard events and
sample grids into a local staging directory and uploads them with pyarrow (the filesystem layer Ray uses)
after every checkpoint and at the end, so a lost node loses at most one checkpoint interval of logs.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from vaegan_dist.atomic import atomic_write_text
from vaegan_dist.config import ConfigError, config_from_dict
from vaegan_dist.model.store import RUN_MARKER, checkpoint_step, find_checkpoints

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
STAGING = Path("~/vaegan-dist/staging")


def is_url(path: str) -> bool:
    return bool(_URL.match(path))


class RunStorage:
    """One run's directory: ``storage_path/name``. It is the run's identity: whoever launches the loop
    (the CLI, a Tune trial) decides it and hands it down; the loop never derives it from the config."""

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
        """The file's text, None if it does not exist; anything else in its place is a one-line error."""
        try:
            if not self.remote:
                path = self.local_dir / relative
                if not path.exists() and not path.is_symlink():
                    return None
                if path.is_symlink() or not path.is_file():
                    raise ConfigError(f"{path}: not a regular file; move it away or choose another train.name")
                return path.read_text()
            import pyarrow.fs

            fs, root = self._fs()
            if fs.get_file_info(f"{root}/{relative}").type == pyarrow.fs.FileType.NotFound:
                return None
            with fs.open_input_stream(f"{root}/{relative}") as f:
                return f.read().decode()
        except (OSError, UnicodeDecodeError) as err:
            raise ConfigError(f"{self.where()}/{relative}: unreadable ({type(err).__name__}: "
                              f"{str(err).splitlines()[0][:200]}); choose another train.name") from None

    def __repr__(self) -> str:
        return f"RunStorage({self.storage_path!r}, {self.name!r})"

    def where(self) -> str:
        return self.url if self.remote else str(self.local_dir)

    def _entries(self) -> list[str] | None:
        """Names in the run directory, or None if it does not exist."""
        if not self.remote:
            if not self.local_dir.exists():
                return None
            if not self.local_dir.is_dir():
                return [self.local_dir.name]  # a file in the way: foreign
            return [p.name for p in self.local_dir.iterdir()]
        import pyarrow.fs

        fs, root = self._fs()
        if fs.get_file_info(root).type == pyarrow.fs.FileType.NotFound:
            return None
        return [info.base_name for info in fs.get_file_info(pyarrow.fs.FileSelector(root))]

    def exists(self) -> bool:
        """Whether anything (a directory, or a file in the way) is at this run's path."""
        return self._entries() is not None

    def check_ours(self) -> None:
        """Refuse a run directory that is not ours, reading only: ours is new, empty, marked as a vaegan-dist
        run, or (runs from before the marker) holds a complete config.yaml of ours and a checkpoint_*
        directory. Anything else belongs to someone else, and nothing of it is ever overwritten."""
        entries = self._entries()
        if not entries or RUN_MARKER in entries or self._is_legacy_run(entries):
            return
        raise ConfigError(f"config key 'train.name': {self.where()} exists and is not a vaegan-dist run "
                          f"(no {RUN_MARKER}); choose another train.name or train.storage_path")

    def mark_ours(self) -> None:
        if not self.remote:
            self.local_dir.mkdir(parents=True, exist_ok=True)
        if RUN_MARKER not in (self._entries() or []):
            self.write_text(RUN_MARKER, "a vaegan-dist run directory: checkpoints, TensorBoard events, samples\n")

    def _is_legacy_run(self, entries: list[str]) -> bool:
        if "config.yaml" not in entries or not any(checkpoint_step(e) >= 0 for e in entries):
            return False
        try:
            raw = yaml.safe_load(self.read_text("config.yaml") or "")
            config_from_dict(raw)
        except (ConfigError, yaml.YAMLError):
            return False
        return isinstance(raw, dict) and set(raw) >= {"data", "model", "objective", "optim", "train"}

    def saved_configs(self) -> list[tuple[str, str]]:
        """(relative path, text) of the configs a rerun must agree with: the newest checkpoint's (what its
        tensors were built with), then the run's own config.yaml; those that exist."""
        if self.remote:
            checkpoints = sorted((e for e in self._entries() or [] if checkpoint_step(e) >= 0), key=checkpoint_step)
        else:
            checkpoints = [p.name for p in find_checkpoints(self.local_dir)]  # complete ones only
        found = []
        for relative in ([f"{checkpoints[-1]}/config.yaml"] if checkpoints else []) + ["config.yaml"]:
            text = self.read_text(relative)
            if text is not None:
                found.append((relative, text))
        return found

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
