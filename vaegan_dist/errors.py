"""The errors a user can act on, each a one-line message naming the key, file, value or step at fault.

They live in one import-light module so the CLI can catch them without importing torch or Ray first.
"""

from __future__ import annotations

from vaegan_dist.config.errors import ConfigError
from vaegan_dist.data.manifest import DataError


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (unreadable, foreign, or holding more than tensors and plain values)."""


class TrainingError(RuntimeError):
    """Training stopped: a non-finite loss, a checkpoint that could not be written, ranks that disagree."""


USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, DataError, CheckpointError, TrainingError)

__all__ = ["ConfigError", "DataError", "CheckpointError", "TrainingError", "USER_ERRORS"]
