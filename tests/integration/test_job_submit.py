"""`ray job submit` of a short training run to a real 2-node cluster started on loopback by
cluster/local_cluster.sh, through cluster/submit.sh."""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import kill_processes_naming
from vaegan_dist.model.store import load_state

pytestmark = [pytest.mark.ray, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
GCS_PORT, DASHBOARD_PORT = "6391", "8276"


@pytest.fixture(scope="module")
def local_cluster():
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    script = str(ROOT / "cluster" / "local_cluster.sh")
    subprocess.run(["bash", script, "start", GCS_PORT, DASHBOARD_PORT], env=env, check=True, timeout=180,
                   capture_output=True)
    try:
        yield {**env, "RAY_ADDRESS": f"http://127.0.0.1:{DASHBOARD_PORT}"}
    finally:
        subprocess.run(["bash", script, "stop", GCS_PORT], env=env, timeout=120, capture_output=True)


def submit(env, *args):
    return subprocess.run(["bash", str(ROOT / "cluster" / "submit.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=400)


def test_job_submission_trains_across_the_two_nodes(local_cluster, faces32, tmp_path):
    tiny = ["model.width=0.125", "model.encoder_fc=32", "model.latent_dim=8", "model.discriminator_fc=16",
            "data.batch_size=8", "data.loader_workers=0", "train.grid_size=8", "train.checkpoint_every=2",
            "train.log_every=2", "train.image_every=2", "train.collective_timeout_s=120"]
    out = submit(local_cluster, "--preset", "smoke", f"data.source={faces32}", f"train.storage_path={tmp_path}",
                 "train.name=job", "train.shared_storage=true", "train.steps=4", *tiny)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert "succeeded" in out.stdout + out.stderr
    assert load_state(tmp_path / "job")["step"] == 4
    assert (tmp_path / "job" / "tensorboard").is_dir()

    refused = submit(local_cluster, "--preset", "smoke", f"data.source={faces32}", f"train.storage_path={tmp_path}",
                     "train.name=refused", "train.steps=4", *tiny)
    assert refused.returncode != 0
    assert "'train.storage_path' is a local path" in refused.stdout + refused.stderr


def test_stopping_the_local_cluster_leaves_other_ray_clusters_alone(local_cluster):
    """`local_cluster.sh stop` stops its own cluster only (`ray stop` would take every Ray on the machine,
    a user's ray.init and a running sweep included). It stops the module's cluster (started once for both tests:
    a start and a stop cost ~25 s), so it runs last; the fixture's own stop then finds nothing to stop."""
    ray_tmp = tempfile.mkdtemp(prefix="rs", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "RAY_AUTH_MODE": "token"}
    env.pop("RAY_ADDRESS", None)
    hold = ("import ray, sys; ray.init(num_cpus=1, include_dashboard=False); print('up', flush=True); "
            "sys.stdin.readline(); print(ray.get(ray.remote(lambda: 'still alive').remote()), flush=True)")
    other = subprocess.Popen([sys.executable, "-c", hold], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**env, "RAY_TMPDIR": ray_tmp})
    try:
        assert other.stdout.readline().strip() == "up"
        script = str(ROOT / "cluster" / "local_cluster.sh")
        assert [p for p in Path("/proc").iterdir() if p.name.isdigit() and _names_port(p, GCS_PORT)]
        stopped = subprocess.run(["bash", script, "stop", GCS_PORT], env=env, timeout=120, capture_output=True,
                                 text=True)
        assert stopped.returncode == 0 and f"stopped the cluster on GCS port {GCS_PORT}" in stopped.stdout
        assert not [p for p in Path("/proc").iterdir() if p.name.isdigit() and _names_port(p, GCS_PORT)]
        current = Path(os.environ.get("RAY_TMPDIR", "/tmp")) / "ray" / "ray_current_cluster"  # ray.init(): its own
        assert not current.exists() or not current.read_text().strip().endswith(f":{GCS_PORT}")
        out, _ = other.communicate("\n", timeout=60)
        assert "still alive" in out
    finally:
        other.kill()
        other.wait(timeout=30)
        kill_processes_naming(ray_tmp)  # what the killed driver's local Ray left, found by its directory
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _names_port(proc: Path, port: str) -> bool:
    try:
        return f":{port}" in (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
