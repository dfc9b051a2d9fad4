"""Worker processes that never outlive the process that started them.

A SIGKILLed parent runs no cleanup: its DataLoader workers and its converter pool workers (blocked on a queue
nobody writes to any more) would run on. On Linux each worker asks the kernel for SIGKILL when its parent exits
(``prctl(PR_SET_PDEATHSIG)``); elsewhere this is a no-op.

A DataLoader worker started through the forkserver is the forkserver's child, so the kernel watches the forkserver,
not the owner. The forkserver exits when the last holder of its "alive" pipe is gone, and each worker it forks
holds that pipe itself: the two could wait for each other for ever. Seen in CI: a killed training stream's
forkserver and worker still running 15 s later, in some runs of the full suite. Such a worker also watches the
owner itself, from a thread that looks once a second (the owner's pid and start time, so a recycled pid is no owner).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

from vaegan_dist.procfs import process_stat

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


WATCH_S = 1.0  # how often a forkserver-started worker looks for its owner


def _alive(pid: int, started: int | None = None) -> bool:
    """Whether ``pid`` runs (neither gone nor a zombie waiting for its own parent to reap it) and, if ``started``
    is given, is the process that started then, not a later one with a recycled pid."""
    stat = process_stat(pid)
    return stat is not None and (started is None or stat[1] == started)


@dataclass(frozen=True)
class DieWithParent:
    """A ``worker_init_fn`` / pool ``initializer``: SIGKILL this process when its parent exits.

    ``owner_pid`` is the process that asked for the worker (its parent, or the forkserver's parent): if it
    is already gone when the request is made (it died between the fork and now), exit at once.
    """

    owner_pid: int
    owner_started: int | None = None  # its start time (/proc/<pid>/stat), where known

    def __call__(self, *_: object) -> None:
        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            return  # best effort: a kernel or sandbox without prctl leaves the worker as before
        if not _alive(self.owner_pid, self.owner_started):
            os._exit(1)
        if os.getppid() != self.owner_pid:  # started through the forkserver: see the module docstring
            threading.Thread(target=self._exit_with_owner, name="exit-with-owner", daemon=True).start()

    def _exit_with_owner(self) -> None:
        while _alive(self.owner_pid, self.owner_started):
            time.sleep(WATCH_S)
        os._exit(1)


def die_with_parent() -> DieWithParent:
    """The initializer for workers started from this process."""
    stat = process_stat(os.getpid())
    return DieWithParent(os.getpid(), stat[1] if stat else None)
