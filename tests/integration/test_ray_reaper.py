"""The reaper's snapshot of a driver's processes (Linux: it reads /proc)."""

import signal
import subprocess
import sys
import time

import pytest

from vaegan_dist.train import ray_reaper

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

SPAWN_AND_SLEEP = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
time.sleep(600)
"""


def test_a_snapshot_is_the_drivers_tree_and_void_once_the_driver_is_a_zombie(monkeypatch):
    """A killed driver stays a zombie (same pid, same start time) until its parent waits: the snapshot must not
    take the zombie for the driver, whose children the kernel has already moved away."""
    driver = subprocess.Popen([sys.executable, "-c", SPAWN_AND_SLEEP])
    found: dict[int, int] = {}
    try:
        started = ray_reaper._stat(driver.pid)[1]
        monkeypatch.setattr(ray_reaper.os, "getppid", lambda: driver.pid)  # the reaper is the driver's child
        deadline = time.time() + 30
        while not (found := ray_reaper.snapshot(driver.pid, started)) and time.time() < deadline:
            time.sleep(0.05)
        assert len(found) == 1, found  # the driver's child
        assert ray_reaper.snapshot(driver.pid, started + 1) is None  # a recycled pid
        driver.kill()  # no wait(): a zombie
        deadline = time.time() + 10
        while open(f"/proc/{driver.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z" and time.time() < deadline:
            time.sleep(0.01)
        assert ray_reaper.snapshot(driver.pid, started) is None
        assert ray_reaper.alive(found) == found  # the orphan runs on; reap() is what ends it
        monkeypatch.setattr(ray_reaper, "TERM_S", 0.0)
        ray_reaper.reap(found)
        deadline = time.time() + 10
        while ray_reaper.alive(found) and time.time() < deadline:
            time.sleep(0.01)  # a signalled process takes a moment to end
        assert ray_reaper.alive(found) == {}
    finally:
        driver.kill()
        driver.wait()
        for pid, started in ray_reaper.alive(found).items():
            ray_reaper._send(pid, started, signal.SIGKILL)


def test_only_ray_node_ids_select_processes():
    assert ray_reaper._is_node_id("0f" * 28)
    for bad in ("", "0f" * 27, "0F" * 28, "zz" * 28, "0f" * 28 + "\n", "*"):
        assert not ray_reaper._is_node_id(bad), bad
