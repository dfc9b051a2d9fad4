"""The reaper's snapshot of a driver's processes (Linux: it reads /proc)."""

import signal
import subprocess
import sys

import pytest

from vaegan_dist.train import ray_reaper

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])


def test_a_snapshot_keeps_what_still_runs_and_is_void_when_the_driver_died_during_it(monkeypatch):
    driver, other, gone = sleeper(), sleeper(), sleeper()
    try:
        started = {p.pid: ray_reaper._stat(p.pid)[1] for p in (driver, other, gone)}
        gone.kill()
        gone.wait()
        monkeypatch.setattr(ray_reaper.os, "getppid", lambda: driver.pid)  # the reaper is the driver's child
        noted = {other.pid: started[other.pid], gone.pid: started[gone.pid]}
        assert ray_reaper.snapshot(noted, driver.pid, started[driver.pid]) == {other.pid: started[other.pid]}
        assert ray_reaper.snapshot(noted, driver.pid, started[driver.pid] + 1) is None  # a recycled pid

        real_descendants = ray_reaper.descendants

        def dying_driver(root: int) -> dict[int, int]:
            found = real_descendants(root)
            driver.send_signal(signal.SIGKILL)  # the kernel ends the driver while the scan runs
            driver.wait()
            return found

        monkeypatch.setattr(ray_reaper, "descendants", dying_driver)
        assert ray_reaper.snapshot(noted, driver.pid, started[driver.pid]) is None
    finally:
        for p in (driver, other, gone):
            p.kill()
            p.wait()


def test_only_ray_node_ids_select_processes():
    assert ray_reaper._is_node_id("0f" * 28)
    for bad in ("", "0f" * 27, "0F" * 28, "zz" * 28, "0f" * 28 + "\n", "*"):
        assert not ray_reaper._is_node_id(bad), bad
