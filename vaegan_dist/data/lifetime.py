"""Worker processes that never outlive the process that started them.

A SIGKILLed parent runs no cleanup: its DataLoader workers (children of the forkserver, which exits when
its parent does) and its converter pool workers (blocked on a queue nobody writes to any more) would run
on. On Linux each worker asks the kernel for SIGKILL when its parent exits (``prctl(PR_SET_PDEATHSIG)``);
elsewhere this is a no-op.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from dataclasses import dataclass

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs: neither gone nor a zombie waiting for its own parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")


@dataclass(frozen=True)
class DieWithParent:
    """A ``worker_init_fn`` / pool ``initializer``: SIGKILL this process when its parent exits.

    ``owner_pid`` is the process that asked for the worker (its parent, or the forkserver's parent): if it
    is already gone when the request is made (it died between the fork and now), exit at once.
    """

    owner_pid: int

    def __call__(self, *_: object) -> None:
        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return  # best effort: a kernel or sandbox without prctl leaves the worker as before
        if not _alive(self.owner_pid):
            os._exit(1)


def die_with_parent() -> DieWithParent:
    """The initializer for workers started from this process."""
    return DieWithParent(os.getpid())
