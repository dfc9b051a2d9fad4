"""A real 2-node Ray cluster in this process tree (ray.cluster_utils.Cluster): the local-storage check,
training across nodes, elastic worker counts, and a worker killed with SIGKILL mid-run."""

import os
import signal
import threading
import time

import pytest

from tests.conftest import tiny_config
from vaegan_dist.config import ConfigError
from vaegan_dist.model.store import find_checkpoints, load_state
from vaegan_dist.train.launcher import launch

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def two_nodes():
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address)
    assert len([n for n in ray.nodes() if n["Alive"]]) == 2
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def ray_args(*extra):
    return ["train.workers=2", "train.cpus_per_worker=1", "train.collective_timeout_s=60", "train.start_timeout_s=60",
            *extra]


def test_local_storage_with_two_nodes_is_refused_before_training(two_nodes, faces32, tmp_path):
    with pytest.raises(ConfigError, match=r"'train.storage_path' is a local path .* the cluster has 2 nodes"):
        launch(tiny_config(faces32, tmp_path, "local", *ray_args("train.steps=2")))
    assert not find_checkpoints(tmp_path / "local")


def test_elastic_worker_range_trains_across_both_nodes(two_nodes, faces32, tmp_path):
    launch(tiny_config(faces32, tmp_path, "elastic", *ray_args("train.workers=1-2", "train.steps=4",
                                                                "train.shared_storage=true")))
    assert load_state(tmp_path / "elastic")["step"] == 4


def _train_worker_pids() -> list[int]:
    """Ray names its actor processes after their class (ray::RayTrainWorker...)."""
    pids = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                if b"RayTrainWorker" in f.read():
                    pids.append(int(entry))
        except (OSError, ValueError):
            continue
    return pids


def test_killed_worker_resumes_from_the_last_checkpoint_and_finishes(two_nodes, faces32, tmp_path):
    cfg = tiny_config(faces32, tmp_path, "fault", *ray_args(
        "train.steps=160", "train.checkpoint_every=20", "train.log_every=20", "train.image_every=1000",
        "train.keep_checkpoints=100", "train.max_failures=2", "train.shared_storage=true"))
    errors = []

    def run():
        try:
            launch(cfg)
        except BaseException as err:  # surfaced below
            errors.append(err)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    deadline = time.time() + 180
    while len(find_checkpoints(tmp_path / "fault")) < 2 and time.time() < deadline:
        time.sleep(0.1)
    before = find_checkpoints(tmp_path / "fault")
    assert len(before) >= 2, "training did not reach its second checkpoint"
    victims = _train_worker_pids()
    assert len(victims) == 2
    os.kill(victims[-1], signal.SIGKILL)
    killed_after = load_state(before[-1])["step"]

    runner.join(timeout=300)
    assert not runner.is_alive() and not errors, errors
    final = load_state(tmp_path / "fault")
    assert final["step"] == 160
    restarts = {load_state(c)["data_position"]["stream_id"] for c in find_checkpoints(tmp_path / "fault")}
    assert restarts - {0}, "no checkpoint was written after a restart"
    assert min(restarts - {0}) >= killed_after  # resumed from a checkpoint at or after the kill, not from scratch
    for checkpoint in find_checkpoints(tmp_path / "fault"):
        load_state(checkpoint)  # every checkpoint on disk is complete and readable


def test_a_sweep_spreads_its_trials_over_both_nodes(two_nodes, faces_eval, evaluator_cache, tmp_path, capsys):
    """Each node has 1 CPU and each trial needs 0.98 + 0.01: the two trials run at once only on different nodes."""
    import csv

    from vaegan_tune.sweep import SweepSettings, run_sweep

    overrides = (f"data.source={faces_eval}", f"data.cache_dir={evaluator_cache}", f"train.storage_path={tmp_path}",
                 "train.shared_storage=true", "train.workers=1", "train.cpus_per_worker=0.98", "data.loader_workers=0",
                 "data.batch_size=8", "train.steps=20", "train.eval_every=10", "train.log_every=10",
                 "train.eval_samples=64", "train.image_every=20", "train.start_timeout_s=60",
                 "train.collective_timeout_s=60")
    run_sweep(SweepSettings(space="objective.gamma: {grid: [1.0e-3, 1.0e-2]}\n", space_file="space.yaml",
                            search="grid", scheduler="fifo", name="spread", overrides=overrides))
    assert "2 trial(s) of 1 worker(s) each, 2 at a time" in capsys.readouterr().out
    with open(tmp_path / "spread" / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["status"], r["step"]) for r in rows] == [("completed", "20")] * 2
    assert {float(r["objective.gamma"]) for r in rows} == {1e-3, 1e-2}
