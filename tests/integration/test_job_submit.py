"""`ray job submit` of a short training run to a real 2-node cluster started on loopback by
cluster/local_cluster.sh, through cluster/submit.sh."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

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
        subprocess.run(["bash", script, "stop"], env=env, timeout=120, capture_output=True)


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
