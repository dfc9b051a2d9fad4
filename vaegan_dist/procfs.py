"""One reading of /proc/<pid>/stat (Linux), shared by the Ray reaper and the workers that die with their owner."""

from __future__ import annotations


def process_stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a process, or None when it is gone. A zombie is gone: a killed
    process stays one, with its pid and start time, until its own parent waits for it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else (int(fields[1]), int(fields[19]))
    except (OSError, IndexError, ValueError):
        return None
