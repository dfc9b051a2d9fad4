"""Shared fixtures. TRITON_INTERPRET must be set before anything imports triton (kernel tests run the
Triton kernels on the CPU through the interpreter)."""

from __future__ import annotations

import multiprocessing.util
import os
import sys

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
# Train's controller notices a started worker group, a report and a finished run at its next poll: 0.2 s here
# instead of the product's 0.5 (vaegan_dist.ray_compat.REPORT_POLL_S, where the poll's CPU counts against
# training) saves ~0.6 s per Ray Train run, of which the suite starts dozens; what the tests check does not
# depend on it. test_cluster_configs checks the product's value; bench/report_poll.py measures both.
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
# The measured device peak (vaegan_dist.train.peak) is cached per machine under XDG_CACHE_HOME: tests (and the Ray
# workers they start, which inherit this) measure their own instead of reading or writing the user's.
os.environ["XDG_CACHE_HOME"] = __import__("tempfile").mkdtemp(prefix="vaegan-test-cache-")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from vaegan_dist.config import Config, build_config  # noqa: E402

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def faces32(tmp_path_factory) -> Path:
    """240 procedural faces at 32 px in shards of 40: 192 train (5 shards), 24 valid, 24 test."""
    from vaegan_dist.data.synthetic import prepare_synthetic

    out = tmp_path_factory.mktemp("faces32")
    prepare_synthetic(out, num=240, size=32, seed=3, workers=1, shard_samples=40, progress=False)  # in-process
    return out


@pytest.fixture(scope="session")
def faces_eval(tmp_path_factory):
    """1200 faces at 32 px (960 train), enough for an evaluator to learn something in seconds."""
    from vaegan_dist.data.synthetic import prepare_synthetic

    out = tmp_path_factory.mktemp("faces_eval")
    prepare_synthetic(out, num=1200, size=32, seed=5, workers=2, shard_samples=200, progress=False)
    return out


@pytest.fixture(scope="session")
def evaluator_cache(faces_eval, tmp_path_factory):
    """A cache directory holding an evaluator for faces_eval, where training and evaluate look for it."""
    from vaegan_dist.evaluate.evaluator import cached_evaluator_path
    from vaegan_dist.evaluate.train_evaluator import train_evaluator

    cache = tmp_path_factory.mktemp("cache")
    evaluator = train_evaluator(faces_eval, max_epochs=15, log=lambda line: None)
    evaluator.save(cached_evaluator_path(cache, evaluator.fingerprint))
    return cache


def kill_processes_naming(text: str, rounds: int = 3) -> None:
    """SIGKILL every process whose command line contains ``text`` (a test's own Ray temp directory): how a
    test stops the Ray it started without `ray stop`, which would stop every Ray on the machine."""
    import signal
    import time

    for _ in range(rounds):
        found = []
        for proc in Path("/proc").iterdir():
            try:
                if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(proc.name))
            except OSError:
                continue
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if not found:
            return
        time.sleep(1)


def tiny_config(data_dir: Path, run_root: Path, name: str = "run", *overrides: str) -> Config:
    """The smoke preset shrunk further so that a step takes a few milliseconds."""
    return build_config("smoke", [
        f"data.source={data_dir}", f"train.storage_path={run_root}", f"train.name={name}",
        "data.batch_size=8", "data.loader_workers=0", "data.shuffle_buffer=16", "train.workers=0",
        "model.width=0.125", "model.encoder_fc=32", "model.discriminator_fc=16", "model.latent_dim=8",
        "train.grid_size=8", "train.eval_every=0", *overrides,
    ])


# Process starts, seen through Python's audit events (subprocess, fork, spawn, exec): tests/unit starts none, so
# that `pytest -m unit` answers in seconds on any machine; a unit test (or a fixture it uses) that starts one
# fails and says what it started.
_PROCESS_EVENTS = {"subprocess.Popen", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.system",
                   "os.exec", "os.startfile"}
_unit_process_starts: list[str] | None = None  # a list while a unit test runs


def _record_process_start(event: str, args: tuple) -> None:
    if _unit_process_starts is not None and event in (*_PROCESS_EVENTS, "multiprocessing.spawn"):
        _unit_process_starts.append(f"{event} {str(args)[:160]}")


sys.addaudithook(_record_process_start)


def _recording_spawn(spawn):
    """multiprocessing's spawn and forkserver start methods (torch.multiprocessing.spawn too) start their processes
    through _posixsubprocess, which raises no audit event: recorded here instead."""
    def spawnv_passfds(path, args, passfds):
        _record_process_start("multiprocessing.spawn", tuple(args))
        return spawn(path, args, passfds)
    return spawnv_passfds


multiprocessing.util.spawnv_passfds = _recording_spawn(multiprocessing.util.spawnv_passfds)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    if _ungrouped and item.get_closest_marker("ray"):
        pytest.fail(_ungrouped, pytrace=False)
    return (yield from _no_process_started(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _no_process_started(item))


def _no_process_started(item):
    global _unit_process_starts
    if item.get_closest_marker("unit") is None:
        return (yield)
    _unit_process_starts = []
    try:
        result = yield
    finally:
        started, _unit_process_starts = _unit_process_starts, None
    if started:
        pytest.fail(f"a unit test started a process ({started[0]}): make it in-process or move it to "
                    "tests/integration", pytrace=False)
    return result


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the xdist_group markers added here
def pytest_collection_modifyitems(config, items) -> None:
    """tests/unit: functions against hand computations and references, no I/O beyond a temp dir, seconds in
    all. tests/integration: training runs, Ray, subprocesses, several processes. `-m unit` runs the first."""
    for item in items:
        parts = Path(str(item.fspath)).parts
        if "unit" in parts:
            item.add_marker(pytest.mark.unit)
        elif "integration" in parts:
            item.add_marker(pytest.mark.integration)
        if item.get_closest_marker("ray") is not None:
            item.add_marker(pytest.mark.xdist_group("ray"))


# `pytest -n 2` (the README's command; --dist loadgroup is in pyproject's addopts) runs the tests marked `ray` one
# after the other on one worker and everything else on the other, side by side. Never two Rays at once: a plain
# `ray.init()` joins the newest `ray start` cluster on the machine, and two 2-CPU Rays starve each other's trials
# (the PBT test took 342 s instead of ~100 when grouping failed). The split pays because the Ray tests mostly wait
# (process starts, polls, Tune's decisions): one test at a time the suite took 729 s on 2 cores, 485 s of it the
# Ray tests, and used 6.8 of its 24.4 CPU-minutes. The other worker yields the CPU (_yield_the_cpu): at an equal
# share the Ray tests took 1.5-2x as long and the suite 738 s; yielding, 629 s (bench/RESULTS.md, issue 28).
_ungrouped: str | None = None  # why the Ray tests may not run on this worker
_priority_chosen = False  # this worker has seen its first test, which says its lane


def pytest_collection_finish(session) -> None:
    """Grouping that silently stopped would run two Rays at once: the Ray tests fail at setup instead, saying why.
    (xdist marks a grouped test's id with its group while the collection is modified.)"""
    global _ungrouped
    if getattr(session.config.option, "loadgroup", False) and any(
            item.get_closest_marker("ray") and "@ray" not in item.nodeid for item in session.items):
        _ungrouped = (f"pytest-xdist {__import__('xdist').__version__} did not group the Ray tests on pytest "
                      f"{pytest.__version__} (pytest 9.2 broke --dist loadgroup: pytest-xdist#1386); two would run "
                      "at once: install pytest<9.2, as pyproject.toml asks, or run without -n")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    """A worker's first test says which lane it is: xdist gives the Ray group, whole, to one worker first."""
    global _priority_chosen
    if not _priority_chosen and "PYTEST_XDIST_WORKER" in os.environ:
        _priority_chosen = True
        if item.get_closest_marker("ray") is None:
            _yield_the_cpu()


def _yield_the_cpu() -> None:
    """Lower this worker's priority, and its children's. Linux shares the CPU between sessions first (autogroups)
    and by nice only within one, and the Ray tests' drivers and clusters run in sessions of their own: so this
    worker starts a session of its own and lowers that session's weight too."""
    os.nice(10)
    try:
        os.setsid()
        with open("/proc/self/autogroup", "w") as f:
            f.write("10")
    except OSError:  # no autogroups (then nice is all there is), or not allowed: the split still runs
        pass
