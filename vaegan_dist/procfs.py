"""Readings of /proc/<pid>/stat (Linux), shared by the Ray reaper, the workers that die with their owner and the
benches that time Ray's processes."""

from __future__ import annotations

import os


def _stat_fields(pid: int) -> list[str] | None:
    """The fields after the command name (which may hold spaces and parentheses), from the state on; None when
    the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a process, or None when it is gone. A zombie is gone: a killed
    process stays one, with its pid and start time, until its own parent waits for it."""
    fields = _stat_fields(pid)
    try:
        return None if fields is None or fields[0] in ("Z", "X") else (int(fields[1]), int(fields[19]))
    except (IndexError, ValueError):
        return None


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used, or None when it is gone."""
    fields = _stat_fields(pid)
    try:
        return None if fields is None else (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError):
        return None
