"""Turning a failed Ray worker back into the user-facing error it raised.

Ray Train wraps an exception raised in a worker in a ``WorkerGroupError`` whose text is the whole remote
traceback. The errors of :mod:`vaegan_dist.errors` are meant to be read as one line, so the launcher
unwraps them with :func:`user_error_from`.
"""

from __future__ import annotations

from vaegan_dist.errors import USER_ERRORS


def user_error_from(error: BaseException, user_errors: tuple[type[BaseException], ...] = USER_ERRORS
                    ) -> BaseException | None:
    """The first worker's user-facing error inside a Ray Train failure, or None if there is none."""
    failures = getattr(error, "worker_failures", None) or {}
    for rank in sorted(failures):
        base = _raised_in_worker(failures[rank])
        if isinstance(base, user_errors):
            return base
    return None


def _raised_in_worker(failure: BaseException) -> BaseException:
    """The exception the worker's code raised. Ray 2.60 wraps it in UserExceptionWithTraceback (to carry the
    remote traceback as text), which keeps it only in the private ``_base_exc``: Ray offers no public way to
    get it back, so this is the one place that reads it; a Ray that drops the attribute gives the wrapper, and
    the launcher then shows Ray's own message."""
    return getattr(failure, "_base_exc", failure)
