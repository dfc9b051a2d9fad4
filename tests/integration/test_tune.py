"""`vaegan-dist tune` for real: Ray Tune sweeps of Ray Train trials.

The kill and ASHA tests run the CLI as a subprocess with its own RAY_TMPDIR, so that whatever Ray processes it
leaves (a driver killed with SIGKILL leaves its local cluster) are found and stopped by that directory, never by
`ray stop`, which would reach other clusters on the machine. The ASHA sweep's early-stopped trials also leave
Train's placement groups behind for a while, so it needs its own Ray too (on a shared one, a later sweep waited
for their CPUs and timed out). The two short sweeps run the CLI's main() in this process on one local Ray
(``ray_here``).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import kill_processes_naming
from vaegan_dist.cli.main import main
from vaegan_dist.model.store import find_checkpoints, load_state

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.ray]

# Small enough for 2 CPU cores: each trial is one worker with half a core, decoding in its own process.
TRIAL = ["--preset", "smoke", "train.workers=1", "train.cpus_per_worker=0.49", "data.loader_workers=0",
         "data.batch_size=8", "train.log_every=10", "train.eval_every=10", "train.eval_samples=64",
         "train.image_every=20", "train.start_timeout_s=60", "train.collective_timeout_s=120"]


# tests/conftest.py's tiny networks: where a sweep need not be caught midway, a step costs a few milliseconds
TINY = ["model.width=0.125", "model.encoder_fc=32", "model.discriminator_fc=16", "model.latent_dim=8"]


@pytest.fixture
def ray_tmp():
    path = Path(tempfile.mkdtemp(prefix="rt", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    yield path
    kill_processes_naming(str(path))
    shutil.rmtree(path, ignore_errors=True)


def _tune(args: list[str], ray_tmp: Path, env: dict[str, str] | None = None, **popen) -> subprocess.Popen:
    env = env or {**os.environ, "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "vaegan_dist.cli.main", "tune", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True, **popen)


def _finish(proc: subprocess.Popen, timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"the sweep did not finish within {timeout} s:\n{out[-4000:]}")
    assert proc.returncode == 0, out[-4000:]
    return out


def _results(sweep: Path) -> list[dict[str, str]]:
    with open(sweep / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def tune_saved_a_finished_trial(sweep: Path) -> bool:
    """Whether Tune's experiment state in ``sweep`` (read with Tune's own public reader) has a trial that ended."""
    from ray.tune import ExperimentAnalysis

    if not list(sweep.glob("experiment_state-*.json")):
        return False
    try:
        return any(trial.status == "TERMINATED" for trial in ExperimentAnalysis(str(sweep)).trials)
    except Exception:  # noqa: BLE001 - a state file caught while Tune rewrites it: look again
        return False


def test_a_killed_sweep_resumes_without_rerunning_finished_trials(faces_eval, evaluator_cache, tmp_path, ray_tmp):
    """One trial at a time (1.5 CPUs each on 2): the first finishes, the driver is killed with SIGKILL while the
    second is midway, and --resume finishes the second from its checkpoint and leaves the first alone."""
    STEPS = 120  # noqa: N806 - a trial's length: long enough that the second is caught midway
    space = tmp_path / "space.yaml"
    space.write_text("objective.gamma: {grid: [1.0e-3, 1.0e-2]}\n")
    args = [*TRIAL, "train.cpus_per_worker=1.5", f"train.steps={STEPS}", "train.checkpoint_every=15",
            "train.eval_every=40", f"data.source={faces_eval}", f"data.cache_dir={evaluator_cache}",
            f"train.storage_path={tmp_path}"]
    # Tune saves its experiment state (the barrier below) every second instead of when it judges it cheap.
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1", "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    proc = _tune(["--space", str(space), "--search", "grid", "--scheduler", "fifo", "--name", "killed", *args], ray_tmp,
                 env=env)
    runs = tmp_path / "killed" / "runs"
    deadline = time.monotonic() + 420
    first = second = None
    while time.monotonic() < deadline and proc.poll() is None:
        done = [r for r in (runs.iterdir() if runs.exists() else []) if find_checkpoints(r)
                and load_state(r)["step"] == STEPS]
        if done and first is None:
            first = done[0]
        others = [r for r in runs.iterdir() if r != first and find_checkpoints(r)] if first else []
        # The barrier: Tune's saved experiment state, what --resume reads, records the first trial's end.
        if others and tune_saved_a_finished_trial(tmp_path / "killed"):
            second = others[0]
            break
        time.sleep(0.5)
    ended = proc.poll() is not None
    assert not ended and first is not None and second is not None, \
        f"the sweep never got midway{':' + chr(10) + proc.communicate()[0][-4000:] if ended else ''}"
    from vaegan_dist.train.ray_reaper import descendants

    started = descendants(proc.pid)  # the driver's Ray, its trial actors and workers (they rename themselves)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    deadline = time.monotonic() + 60  # the driver's reaper ends them within seconds
    while any(Path(f"/proc/{pid}").exists() for pid in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    kill_processes_naming(str(ray_tmp))  # whatever is left of the killed driver's Ray: nothing writes after this
    assert load_state(second)["step"] < STEPS
    # A checkpoint written in the last moment may not have been recorded by Ray Train before the kill: the
    # trial resumes from its newest checkpoint or the one before it, never from the start.
    written = [c.name for c in find_checkpoints(second)][-2:]
    first_checkpoint = find_checkpoints(first)[-1]
    first_mtime = (first_checkpoint / "state.pt").stat().st_mtime_ns

    out = _finish(_tune(["--resume", "--name", "killed", f"train.storage_path={tmp_path}"], ray_tmp), timeout=420)
    rows = {r["trial_id"]: r for r in _results(tmp_path / "killed")}
    assert {rows[first.name]["status"], rows[second.name]["status"]} == {"completed"}
    assert load_state(second)["step"] == STEPS
    resumed = re.search(r"resuming from (checkpoint_\d+)", out)
    assert resumed and resumed.group(1) in written, (written, out[-3000:])  # its own checkpoint, not the first's
    assert f"trial {second.name}: " in out and f"trial {first.name}: " not in out  # the finished one was not restarted
    assert (first_checkpoint / "state.pt").stat().st_mtime_ns == first_mtime


def test_an_asha_sweep_stops_bad_trials_and_names_the_best(faces_eval, evaluator_cache, tmp_path, ray_tmp):
    space = tmp_path / "space.yaml"
    space.write_text("objective.gamma: {grid: [1.0e-6, 1.0e-2]}\noptim.lr_decoder: {grid: [1.0e-6, 1.0e-3]}\n")
    # 120 steps: long enough (a few seconds) that ASHA's decision on an early evaluation reaches a trial before its end
    proc = _tune(["--space", str(space), "--search", "grid", "--name", "asha", *TRIAL, *TINY, "train.steps=120",
                  f"data.source={faces_eval}", f"data.cache_dir={evaluator_cache}", f"train.storage_path={tmp_path}"],
                 ray_tmp)
    out = _finish(proc, timeout=540)
    sweep = tmp_path / "asha"
    rows = _results(sweep)
    assert len(rows) == 4
    assert {r["status"] for r in rows} <= {"completed", "stopped early"}
    assert any(r["status"] == "stopped early" and int(r["step"]) < 120 for r in rows), rows
    assert any(r["status"] == "completed" and r["step"] == "120" for r in rows), rows
    ranked = [(-int(r["step"]), float(r["eval/fd"])) for r in rows]
    assert ranked == sorted(ranked)  # best first: the furthest trained, then by fd (lower is better)
    best = rows[0]
    assert f"best trial: {best['trial_id']} (eval/fd {float(best['eval/fd']):.4g}" in out
    assert f"train.name={best['trial_id']}" in out and f"train.storage_path={sweep / 'runs'}" in out
    # Every trial is its own run: its config names it, its TensorBoard holds its own eval curve and hparams.
    gammas = set()
    for row in rows:
        run = sweep / "runs" / row["trial_id"]
        assert row["run_dir"] == str(run)
        # read as YAML: an id such as 99191_00002 is an integer to YAML 1.1, so the file quotes it
        assert yaml.safe_load((run / "config.yaml").read_text())["train"]["name"] == row["trial_id"]
        events = EventAccumulator(str(run / "tensorboard"))
        events.Reload()
        steps = [e.step for e in events.Scalars("eval/fd")]
        assert steps and steps[-1] == int(row["step"])
        assert "_hparams_/session_start_info" in events.summary_metadata
        gammas.add(float(row["objective.gamma"]))
        if row["status"] == "completed":
            assert load_state(run)["step"] == 120 and Path(row["checkpoint"]) == find_checkpoints(run)[-1]
    assert gammas == {1e-6, 1e-2}


def _copies(runs: Path) -> list[tuple[str, dict]]:
    """Every segment of the trials' schedules that started from another trial's checkpoint."""
    found = []
    for schedule in runs.glob("*/schedule.jsonl"):
        try:
            lines = schedule.read_text().splitlines()
        except OSError:
            continue
        found += [(schedule.parent.name, json.loads(line)) for line in lines if '"copied_from": "' in line]
    return found


def test_a_pbt_sweep_copies_the_top_trials_and_resumes_after_a_kill(faces_eval, evaluator_cache, tmp_path, ray_tmp):
    """Three trials, two at a time (0.66 of a core each: the head node's shares hold the third back, and trials
    take turns at the perturbation steps), the bottom one copying the top one every 10 steps. The driver is
    killed with SIGKILL once a trial has copied another; --resume finishes every trial. A trial that copied
    continues from the donor's checkpoint of that step (the same tensors), at that step, with the new values; the
    schedules and the winner's replay commands are written."""
    space = tmp_path / "space.yaml"
    space.write_text("optim.lr_decoder: {choice: [1.0e-6, 1.0e-3]}\nobjective.gamma: {loguniform: [1.0e-6, 1.0e-2]}\n")
    env = {**os.environ, "RAY_TMPDIR": str(ray_tmp), "PYTHONUNBUFFERED": "1", "TUNE_GLOBAL_CHECKPOINT_S": "1"}
    proc = _tune(["--space", str(space), "--scheduler", "pbt", "--trials", "3", "--quantile", "0.5", "--name", "pbt",
                  *TRIAL, *TINY, "train.cpus_per_worker=0.66", "train.steps=30", "train.keep_checkpoints=10",
                  f"data.source={faces_eval}", f"data.cache_dir={evaluator_cache}", f"train.storage_path={tmp_path}"],
                 ray_tmp, env=env)
    sweep, runs = tmp_path / "pbt", tmp_path / "pbt" / "runs"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None and not (
            _copies(runs) and list(sweep.glob("experiment_state-*.json"))):
        time.sleep(0.5)
    ended = proc.poll() is not None
    if not ended:
        os.killpg(proc.pid, signal.SIGKILL)
    first, _ = proc.communicate()
    kill_processes_naming(str(ray_tmp))
    assert not ended and _copies(runs), f"no trial copied another before the sweep ended:\n{first[-4000:]}"
    at_kill = {r.name: load_state(r)["step"] if find_checkpoints(r) else 0 for r in runs.iterdir()}
    assert min(at_kill.values()) < 30, at_kill  # the resumed sweep has trials to finish

    out = first + _finish(_tune(["--resume", "--name", "pbt", f"train.storage_path={tmp_path}"], ray_tmp, env=env),
                          timeout=420)
    assert "3 trial(s) of 1 worker(s) each, 2 at a time" in out
    rows = _results(sweep)
    assert len(rows) == 3 and {(r["status"], r["step"]) for r in rows} == {("completed", "30")}, rows
    compared = 0
    for trial, copy in dict(_copies(runs)).items():  # each trial's last copy: its checkpoint of that step stays
        step, donor = copy["step"], copy["copied_from"]
        assert f"trial {trial}: continues from trial {donor}'s checkpoint of step {step}" in out
        adopted = runs / trial / f"checkpoint_{step:08d}"
        assert [c.name for c in find_checkpoints(runs / trial)][0] == adopted.name  # its own older ones went
        assert load_state(runs / trial)["step"] == 30  # and it went on from there
        if (runs / donor / adopted.name).exists():  # the donor's own, unless it copied another later
            ours, theirs = load_state(adopted)["model"], load_state(runs / donor / adopted.name)["model"]
            assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
            compared += 1
        events = EventAccumulator(str(runs / trial / "tensorboard"))
        events.Reload()
        lr = {e.step: e.value for e in events.Scalars("schedule/optim.lr_decoder")}
        final = yaml.safe_load((runs / trial / "config.yaml").read_text())["optim"]["lr_decoder"]
        assert lr[30] == pytest.approx(final, rel=1e-6)  # the values it ran with, as a curve over steps
    assert compared >= 1
    with open(sweep / "schedule.csv", newline="") as f:
        schedule = list(csv.DictReader(f))
    assert {r["trial_id"] for r in schedule} == {r["trial_id"] for r in rows}
    assert sum(1 for r in schedule if r["copied_from"]) >= len(dict(_copies(runs)))
    assert len(schedule) > len(rows)  # trials took turns: each pause and start is a segment
    assert "replay it from scratch, one command after the other:" in out
    assert f"train.name=pbt-replay-{rows[0]['trial_id']}" in out


@pytest.fixture(scope="module")
def ray_here():
    """A 2-CPU Ray in this process for the sweeps that do not kill their driver: `vaegan-dist tune` runs here
    (main(), as its entry point does) and joins it, instead of a process and a Ray of its own per test. Started
    after the kill and ASHA tests, which need a driver and a Ray of their own, so the two never run at once."""
    import ray

    path = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))  # short: Ray's socket paths must fit in 107 bytes
    ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=str(path))
    yield
    ray.shutdown()
    kill_processes_naming(str(path))
    shutil.rmtree(path, ignore_errors=True)


def test_a_sweep_without_resource_flags_is_fitted_to_its_cluster(faces_eval, evaluator_cache, tmp_path, ray_here,
                                                                  capsys):
    """The smoke preset (2 workers x 1 CPU) on a 2-CPU cluster: with the trial's driver it does not fit, so the
    sweep gives each worker 0.99 CPU, says so in one line, and the trial trains."""
    space = tmp_path / "space.yaml"
    space.write_text("objective.gamma: {grid: [1.0e-2]}\n")
    args = ["--space", str(space), "--search", "grid", "--name", "fitted", "--preset", "smoke", "--metric",
            "loss/l_llike", "data.loader_workers=0", "data.batch_size=8", "train.steps=4", "train.eval_every=0",
            "train.image_every=4", "train.log_every=2", "train.start_timeout_s=60",
            f"data.source={faces_eval}", f"data.cache_dir={evaluator_cache}", f"train.storage_path={tmp_path}"]
    code = main(["tune", *args])  # on ray_here: a 2-CPU cluster on any machine
    out = capsys.readouterr().out
    assert code == 0, out[-4000:]
    assert ("sweep: a trial fits this cluster (2 CPU) as 2 worker(s) x 0.99 CPU (the preset's 2 x 1 plus the "
            "trial's driver do not); set train.workers and train.cpus_per_worker to choose") in out
    (row,) = _results(tmp_path / "fitted")
    assert row["status"] == "completed" and row["step"] == "4"
    assert "cpus_per_worker: 0.99" in (tmp_path / "fitted" / "runs" / row["trial_id"] / "config.yaml").read_text()


def test_a_sweep_that_cannot_be_placed_is_refused_at_once(faces_eval, evaluator_cache, tmp_path, ray_here, capsys):
    code = main(["tune", "--space", "gamma", "--trials", "2", *TRIAL, "train.workers=2", "train.cpus_per_worker=1",
                 f"data.source={faces_eval}", f"data.cache_dir={evaluator_cache}", f"train.storage_path={tmp_path}"])
    assert code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("vaegan-dist tune: error: a trial needs 2 worker(s) x 1 CPU and 0.01 CPU for its driver; "
                           "the cluster has 2 CPU"), last
    assert not (tmp_path / "sweep").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith("sweep-")]
