"""When our driver starts a local Ray, nothing of that Ray may outlive the driver for long, even after kill -9.

Ray 2.60 fate-shares its GCS and raylet with the driver that started them (the kernel kills them with it on
Linux), but its DashboardAgent and RuntimeEnvAgent are the raylet's children: they notice the raylet is gone
within ~2 s and then try to tell the (dead) GCS, with a 60-second timeout written into Ray
(``ray._private.utils.publish_error_to_driver``). Measured here: both were still alive 35 s after a kill -9 of
the driver. Ray offers no setting for that timeout, so we keep our own small reaper: a process in its own
session that holds the read end of a pipe whose write end only the driver has. While the driver lives, the
reaper notes the driver's descendants every second (the agents rename themselves to ``ray::DashboardAgent``,
so their command line does not name the session; their place in the process tree does), and also ends every
process whose environment names our node (``RAY_NODE_ID``, which Ray gives the workers it starts and their
children).
When the driver ends, however it ends, the pipe reads EOF; the reaper waits a moment for Ray's own shutdown,
then ends every noted process still alive (the same start time: never a recycled pid), first with SIGTERM and
then with SIGKILL, and exits. Bounded: one wait, two rounds; and the watch ends when the driver is no longer
its parent, even if a forked child of the driver still holds the pipe.

A snapshot counts only if the driver outlived it: one taken while the kernel was ending the driver saw the
agents already re-parented away from it, and once replaced the good one (CI, 2026-12-01: both agents left).
What the reaper did goes to ``<session>/logs/vaegan_reaper.log``.

Only for a Ray we start (``ray.init()`` with no address); a cluster we join is never touched. Linux only (it
reads /proc); elsewhere nothing is started.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from vaegan_dist.procfs import process_stat

GRACE_S = 2.0  # after the driver's end: Ray's own shutdown (a normal exit) finishes in this time
TERM_S = 2.0  # between SIGTERM and SIGKILL
SNAPSHOT_S = 1.0  # how often the driver's descendants are noted
_reaper: subprocess.Popen | None = None  # held for the driver's lifetime: its stdin is the pipe


def start_reaper(session_dir: str, node_id: str) -> None:
    """Watch this driver on behalf of the Ray session in ``session_dir``, if this driver started it (its GCS and
    raylet are our children; ``ray.init()`` without an address may also have joined a cluster found on the
    machine, which is never ours to end). ``node_id`` is the node Ray started here."""
    global _reaper
    if (_reaper is not None or not Path("/proc/self/cmdline").exists() or not _is_session_dir(session_dir)
            or not _is_node_id(node_id)):
        return
    if not any(_parent(pid) == os.getpid() for pid in processes_naming(session_dir)):
        return
    if (started := _stat(os.getpid())) is None:
        return
    # The pipe's write end is not inherited by Ray's processes (Python makes it non-inheritable), so it closes
    # exactly when this process ends.
    _reaper = subprocess.Popen([sys.executable, "-m", "vaegan_dist.train.ray_reaper", session_dir, str(os.getpid()),
                                str(started[1]), node_id],
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)  # not in the driver's process group: a killpg spares it


def _our_processes(part: str):
    """(pid, contents of /proc/<pid>/<part>) for every process of our user but this one."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != os.getuid():
                continue
            with open(f"/proc/{entry}/{part}", "rb") as f:
                yield int(entry), f.read()
        except OSError:  # gone meanwhile
            continue


def processes_naming(text: str) -> list[int]:
    """Our user's processes whose command line contains ``text`` (this process excluded)."""
    return [pid for pid, cmdline in _our_processes("cmdline") if text.encode() in cmdline]


def _is_session_dir(path: str) -> bool:
    """A Ray session directory (``.../session_<date>_<time>_<pid>``): never match processes by an arbitrary string."""
    return bool(path) and Path(path).is_absolute() and Path(path).name.startswith("session_")


def _is_node_id(text: str) -> bool:
    """Ray's node ids are 56 hex digits; anything else never selects processes."""
    return len(text) == 56 and all(c in "0123456789abcdef" for c in text)


_stat = process_stat  # what the snapshot reads of each process (tests call it by this name)


def _parent(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[0] if stat else None


def descendants(root: int) -> dict[int, int]:
    """Every process below ``root`` in the process tree (this one excluded): pid -> start time."""
    stats = {int(e): stat for e in os.listdir("/proc") if e.isdigit() and (stat := _stat(int(e))) is not None}
    found: dict[int, int] = {}
    frontier = {root}
    while frontier:
        children = {pid for pid, (ppid, _) in stats.items() if ppid in frontier and pid not in found}
        found.update({pid: stats[pid][1] for pid in children})
        frontier = children
    found.pop(os.getpid(), None)
    return found


def started_by_ray_on_node(noted: dict[int, int], node_id: str) -> dict[int, int]:
    """Our user's processes that Ray started on our node (their environment names it in RAY_NODE_ID) or for one
    of the noted raylets (RAY_RAYLET_PID): the agents and workers, even when they started after the last
    snapshot. Not always the agents: renaming itself (``ray::DashboardAgent``) can cost a process its environment
    in /proc (CI found neither agent this way once, and here both), so the snapshots are what covers them."""
    markers = [f"RAY_RAYLET_PID={pid}".encode() for pid in noted]
    if _is_node_id(node_id):
        markers.append(f"RAY_NODE_ID={node_id}".encode())
    found: dict[int, int] = {}
    for pid, environ in _our_processes("environ"):
        variables = environ.split(b"\0")
        if any(marker in variables for marker in markers) and (stat := _stat(pid)) is not None:
            found[pid] = stat[1]
    return found


def alive(noted: dict[int, int]) -> dict[int, int]:
    """The processes of ``noted`` (pid -> start time) that still run: same pid, same start time."""
    return {pid: started for pid, started in noted.items() if (stat := _stat(pid)) is not None and stat[1] == started}


def snapshot(driver: int, driver_started: int) -> dict[int, int] | None:
    """The driver's descendants now; None when the driver is gone, before or during the scan: the kernel
    re-parents a dead driver's children at once, so that scan missed them and must not replace the last one."""
    found = descendants(driver)
    stat = _stat(driver)
    if stat is None or stat[1] != driver_started or os.getppid() != driver:
        return None
    return found


def _send(pid: int, started: int, sig: signal.Signals) -> None:
    """``sig`` to ``pid`` if it is still the process that started at ``started``. Through a pidfd where Linux
    has them (5.3+): the pid cannot be recycled between the check and the signal."""
    try:
        handle = os.pidfd_open(pid)
    except (AttributeError, OSError):  # gone, or no pidfds here: a plain kill after the check
        handle = None
    try:
        if (stat := _stat(pid)) is None or stat[1] != started:
            return
        if handle is None:
            os.kill(pid, sig)
        else:
            signal.pidfd_send_signal(handle, sig)
    except OSError:  # ended meanwhile
        pass
    finally:
        if handle is not None:
            os.close(handle)


def reap(noted: dict[int, int], node_id: str = "", log: Callable[[str], None] | None = None) -> None:
    """SIGTERM, then SIGKILL, what is left of ``noted`` (pid -> start time: a recycled pid is never touched) and
    of what Ray started on our node."""
    for sig, wait in ((signal.SIGTERM, TERM_S), (signal.SIGKILL, 0.0)):
        targets = alive({**noted, **started_by_ray_on_node(noted, node_id)})
        targets.pop(1, None)
        targets.pop(os.getpid(), None)
        noted = {**noted, **targets}
        if log is not None and targets:
            log(f"{sig.name} to {sorted(targets)}")
        for pid, started in targets.items():
            _send(pid, started, sig)
        time.sleep(wait)


def main() -> None:
    """argv: the session directory, the driver's pid and its start time, our node's id. Only the driver's
    descendants, noted while the driver is still this process's parent (checked by pid and start time), and the
    processes Ray started on our node are ever reaped: a process that merely names the session (``tail -f`` of
    a Ray log) or belongs to anyone else is never touched."""
    session_dir, driver, driver_started, node_id = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    if not _is_session_dir(session_dir) or driver <= 1:
        return
    log_path = Path(session_dir) / "logs" / "vaegan_reaper.log"

    def log(line: str) -> None:
        try:
            with open(log_path, "a") as f:
                f.write(f"{time.strftime('%H:%M:%S')} {line}\n")
        except OSError:  # the session directory was removed: nothing to record into
            pass

    noted: dict[int, int] | None = None
    while True:  # until the driver is no longer our parent or EOF on stdin: either way it is gone
        if (taken := snapshot(driver, driver_started)) is None:
            break
        if noted is None:
            log(f"watching driver {driver}: {len(taken)} processes below it")
        noted = taken
        if select.select([sys.stdin], [], [], SNAPSHOT_S)[0] and not os.read(sys.stdin.fileno(), 4096):
            break
    noted = noted or {}
    log(f"driver {driver} ended; {len(alive(noted))} of its processes were noted")
    time.sleep(GRACE_S)
    reap(noted, node_id, log)
    log("done")


if __name__ == "__main__":
    main()
