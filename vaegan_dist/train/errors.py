"""Errors that stop a run for a reason a user can act on, and turning a failed Ray worker back into one.

Ray Train wraps an exception raised in a worker in a ``WorkerGroupError`` whose text is the whole remote
traceback. The user-facing errors below (and the data, config and checkpoint errors) are meant to be read
as one line, so the launcher unwraps them with :func:`user_error_from`.
"""

from __future__ import annotations

from vaegan_dist.errors import USER_ERRORS, TrainingError

__all__ = ["TrainingError", "user_error_from"]


def user_error_from(error: BaseException, user_errors: tuple[type[BaseException], ...] = USER_ERRORS
                    ) -> BaseException | None:
    """The first worker's user-facing error inside a Ray Train failure, or None if there is none."""
    failures = getattr(error, "worker_failures", None) or {}
    for rank in sorted(failures):
        base = getattr(failures[rank], "_base_exc", failures[rank])  # Ray's UserExceptionWithTraceback
        if isinstance(base, user_errors):
            return base
    return None
