"""Turning a failed Ray worker back into the user-facing error it raised.

Ray Train wraps an exception raised in a worker in a ``WorkerGroupError`` whose text is the whole remote
traceback. The errors of :mod:`vaegan_dist.errors` are meant to be read as one line, so the launcher
unwraps them with :func:`user_error_from`.
"""

from __future__ import annotations

from vaegan_dist.errors import USER_ERRORS
from vaegan_dist.ray_compat import raised_in_worker


def user_error_from(error: BaseException, user_errors: tuple[type[BaseException], ...] = USER_ERRORS
                    ) -> BaseException | None:
    """The first worker's user-facing error inside a Ray Train failure, or None if there is none."""
    failures = getattr(error, "worker_failures", None) or {}
    for rank in sorted(failures):
        base = raised_in_worker(failures[rank])
        if isinstance(base, user_errors):
            return base
    return None
