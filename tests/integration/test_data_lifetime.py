"""A killed run or conversion leaves no process behind: SIGKILL the parent, then no child remains.
Linux only (processes are read from /proc)."""

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.celeba_tree import make_celeba_tree
from tests.conftest import kill_processes_naming

READ_FOREVER = """
import sys
from vaegan_dist.data.stream import training_stream
stream = training_stream(sys.argv[1], "train", 32, 4, shuffle_buffer=4, loader_workers=1)
next(stream)
"""


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


def descendants(root: int) -> list[int]:
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents[int(entry)] = stat[1]
    found, frontier = [], [root]
    while frontier:
        children = [pid for pid, ppid in parents.items() if ppid in frontier]
        found += children
        frontier = children
    return found


def running(pids: list[int]) -> list[int]:
    return [pid for pid in pids if (stat := _stat(pid)) is not None and stat[0] not in "ZX"]


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")[:100]
    except OSError:
        return "?"


def kill_parent_then_check_children(cmd: list[str], ready, min_children: int, env: dict | None = None,
                                    within_s: float = 15.0) -> None:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                            env=env)
    children: list[int] = []
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            children = descendants(proc.pid)
            if len(children) >= min_children and ready():
                break
            assert proc.poll() is None, "the parent ended on its own"
            time.sleep(0.1)
        else:
            pytest.fail("the children never started")
        time.sleep(1.0)  # let them get busy
        children = descendants(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + within_s
        while running(children) and time.time() < deadline:
            time.sleep(0.2)
        left = [(pid, cmdline(pid)) for pid in running(children)]
        assert not left, f"still running after the parent was killed: {left}"
    finally:
        for pid in running(children):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_killed_training_stream_leaves_no_dataloader_worker(faces32, tmp_path):
    """Shards that are FIFOs nobody writes to: the DataLoader worker blocks in open(), as on a hung mount."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(faces32 / "manifest.json", data / "manifest.json")
    for i in range(5):
        os.mkfifo(data / f"train-{i:06d}.tar")
    kill_parent_then_check_children([sys.executable, "-c", READ_FOREVER, str(data)], lambda: True, min_children=2)


@pytest.mark.parametrize("kind", ["synthetic", "celeba"])
def test_a_killed_conversion_leaves_no_pool_worker(tmp_path, kind):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "vaegan_dist.cli.main", "prepare", kind, "--out", str(out), "--workers", "2",
           "--shard-samples", "2"]
    if kind == "synthetic":
        cmd += ["--num", "1000000", "--size", "32"]
    else:
        make_celeba_tree(tmp_path / "celeba", n=200)
        cmd += ["--root", str(tmp_path / "celeba"), "--size", "32"]
    kill_parent_then_check_children(cmd, lambda: any(out.glob("*.tar")), min_children=1)


START_RAY_AND_WAIT = """
import os, sys, time
from vaegan_dist.train.cluster import connect
from vaegan_dist.train.ray_reaper import descendants
connect("")  # what `vaegan-dist train` and `tune` do: a local Ray, started here
def names(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:
        return b""
deadline = time.time() + 60
while time.time() < deadline and sum(b"Agent" in names(p) for p in descendants(os.getpid())) < 2:
    time.sleep(0.2)  # Ray starts its two agents shortly after ray.init returns
open(sys.argv[1], "w").close()
time.sleep(600)
"""


@pytest.mark.ray
def test_a_killed_driver_leaves_nothing_of_the_ray_it_started(tmp_path):
    """kill -9 of a driver that started Ray the way `vaegan-dist train` does: Ray's GCS, raylet, agents and workers
    (and our reaper) all end within 15 s. Without the reaper, Ray's DashboardAgent and RuntimeEnvAgent stayed for
    60 s (they wait on the dead GCS)."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    started = tmp_path / "started"
    try:
        kill_parent_then_check_children(
            [sys.executable, "-c", START_RAY_AND_WAIT, str(started)],
            started.exists, min_children=4, env={**os.environ, "RAY_TMPDIR": str(ray_tmp)})
    except AssertionError as error:
        logs = [f"{log}:\n{log.read_text()}" for log in ray_tmp.glob("ray/session_*/logs/vaegan_reaper.log")]
        raise AssertionError(f"{error}\nthe reaper's log: {logs or 'none'}") from None
    finally:
        kill_processes_naming(str(ray_tmp))
        shutil.rmtree(ray_tmp, ignore_errors=True)


FAKE_RAY_DRIVER = """
import os, subprocess, sys, time
from vaegan_dist.train.ray_reaper import start_reaper
session, node, started = sys.argv[1], sys.argv[2], sys.argv[3]
# a 'raylet' that names the session, as Ray's do, and a detached 'agent' that only its environment ties to our node:
# started through a child that exits at once, it is never below this process when the reaper looks
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", session])
subprocess.Popen([sys.executable, "-c", "import subprocess, sys; subprocess.Popen([sys.executable, '-c', "
                  "'import time; time.sleep(600)'], start_new_session=True)"],
                 env={**os.environ, "RAY_NODE_ID": node}).wait()
start_reaper(session, node)
open(started, "w").close()
time.sleep(600)
"""


def test_the_reaper_ends_what_ray_started_on_our_node_even_outside_the_drivers_tree(tmp_path):
    """Without Ray: a kill -9'd driver's reaper ends its children and a detached process whose environment names
    our node, and says so in the session's log."""
    from vaegan_dist.train.ray_reaper import processes_naming

    session = tmp_path / "session_2026-12-02_00-00-00_1"
    (session / "logs").mkdir(parents=True)
    node = secrets.token_hex(28)  # never another test's
    started = tmp_path / "started"
    proc = subprocess.Popen([sys.executable, "-c", FAKE_RAY_DRIVER, str(session), node, str(started)],
                            start_new_session=True)
    try:
        deadline = time.time() + 60
        while not started.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert started.exists(), "the fake driver never started"
        detached = [pid for pid in processes_with_env(f"RAY_NODE_ID={node}")]
        assert detached and not set(detached) & set(descendants(proc.pid)), "the test's agent is not detached"
        log_file = session / "logs" / "vaegan_reaper.log"
        deadline = time.time() + 60
        while not (log_file.exists() and "watching" in log_file.read_text()) and time.time() < deadline:
            time.sleep(0.1)  # the reaper's first snapshot
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 15
        while (running(detached) or processes_naming(str(session))) and time.time() < deadline:
            time.sleep(0.2)
        assert not running(detached), "the detached process of our node is still running"
        assert not processes_naming(str(session)), "the driver's child is still running"
        log = log_file.read_text()
        assert "SIGTERM" in log and str(detached[0]) in log, log
    finally:
        kill_processes_naming(str(session))
        for pid in running(processes_with_env(f"RAY_NODE_ID={node}")):
            os.kill(pid, signal.SIGKILL)


def processes_with_env(variable: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and variable.encode() in open(f"/proc/{entry}/environ", "rb").read().split(b"\0"):
                found.append(int(entry))
        except OSError:
            continue
    return found
