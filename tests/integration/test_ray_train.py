"""Ray Train for real: two DDP workers over gloo on this machine, checkpoints, resume by rerunning."""

import pytest
import torch

from tests.conftest import tiny_config
from vaegan_dist.model.store import find_checkpoints, load_state
from vaegan_dist.train.launcher import launch

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=True)
    yield
    ray.shutdown()


def test_two_workers_train_checkpoint_and_resume(ray_local, faces32, tmp_path, capfd):
    common = ["train.workers=2", "train.cpus_per_worker=1", "train.checkpoint_every=3", "train.log_every=3",
              "train.image_every=3", "train.keep_checkpoints=2", "train.collective_timeout_s=120"]
    run = tmp_path / "ray"
    launch(tiny_config(faces32, tmp_path, "ray", "train.steps=3", *common))
    first = load_state(run)
    assert first["step"] == 3

    launch(tiny_config(faces32, tmp_path, "ray", "train.steps=9", *common))
    final = load_state(run)
    assert final["step"] == 9 and final["data_position"]["stream_id"] == 3
    assert [p.name for p in find_checkpoints(run)] == ["checkpoint_00000006", "checkpoint_00000009"]
    assert "resuming from checkpoint_00000003 at step 3" in capfd.readouterr().out
    # DDP kept the replicas identical: rank 0's checkpoint moved away from the resumed weights.
    moved = [not torch.equal(first["model"][k], final["model"][k]) for k in first["model"] if "weight" in k]
    assert all(moved)
    assert sorted(p.name for p in (run / "samples").iterdir())[-1] == "samples_00000009.png"


def test_url_storage_gets_checkpoints_and_uploaded_logs(ray_local, faces32, tmp_path):
    """file:// goes through the same pyarrow path as s3:// and gs://: checkpoints by Ray, TensorBoard events
    and sample grids staged on rank 0's node and uploaded."""
    url = f"file://{tmp_path}/bucket"
    launch(tiny_config(faces32, tmp_path, "remote", "train.workers=2", "train.steps=2", "train.checkpoint_every=2",
                       "train.image_every=2", "train.log_every=2", f"train.storage_path={url}"))
    run = tmp_path / "bucket" / "remote"
    assert load_state(run)["step"] == 2
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert (run / "samples" / "samples_00000002.png").is_file()
    assert (run / "config.yaml").is_file()


def test_unschedulable_workers_fail_instead_of_waiting_forever(ray_local, faces32, tmp_path):
    import time

    started = time.time()
    with pytest.raises(Exception):  # noqa: B017 - Ray's own error type for a failed controller
        launch(tiny_config(faces32, tmp_path, "stuck", "train.workers=3", "train.cpus_per_worker=1", "train.steps=2",
                           "train.start_timeout_s=2", "train.start_retries=1"))
    assert time.time() - started < 120


def test_the_run_directory_is_the_launchers_choice_never_the_configs(ray_local, faces32, tmp_path):
    """As a Tune trial does: the same config (train.name=shared) handed a run of its own must neither resume
    nor touch the run that the config names."""
    import yaml

    from vaegan_dist.train.launcher import build_trainer, run_trainer
    from vaegan_dist.train.resolve import resolve_run
    from vaegan_dist.train.resume import check_run_dir, record_run
    from vaegan_dist.train.storage import RunStorage

    common = ["train.workers=2", "train.checkpoint_every=3", "train.log_every=3", "train.collective_timeout_s=120"]
    # the run the config names: any run will do, so it trains here (train.workers=0), without a Ray Train start
    launch(tiny_config(faces32, tmp_path, "shared", "train.steps=3", *common, "train.workers=0"))
    before = {p: p.read_bytes() for p in (tmp_path / "shared").rglob("*") if p.is_file()}

    job = resolve_run(tiny_config(faces32, tmp_path, "shared", "train.steps=6", *common))
    job = job.with_run(RunStorage(str(tmp_path), "trial_0001"))
    check_run_dir(job)
    record_run(job)
    run_trainer(lambda: build_trainer(job, gpu=False), max_failures=0)
    trial = load_state(tmp_path / "trial_0001")
    assert trial["step"] == 6 and trial["data_position"]["stream_id"] == 0  # started fresh, not from step 3
    assert trial["config"]["train"]["name"] == "trial_0001"  # its recorded config names its own run
    assert yaml.safe_load((tmp_path / "trial_0001" / "config.yaml").read_text())["train"]["name"] == "trial_0001"
    assert list((tmp_path / "trial_0001" / "tensorboard").glob("events.out.tfevents.*"))
    after = {p: p.read_bytes() for p in (tmp_path / "shared").rglob("*") if p.is_file()}
    assert after == before


def test_a_worker_error_reaches_the_driver_as_its_own_one_line_error(ray_local, faces32, tmp_path):
    from vaegan_dist.errors import TrainingError

    explode = [f"optim.lr_{n}=1e30" for n in ("encoder", "decoder", "discriminator")]
    with pytest.raises(TrainingError, match=r"^step \d+: loss term loss/l_\w+ became") as err:
        launch(tiny_config(faces32, tmp_path, "nan", "train.workers=2", "train.steps=20", "train.log_every=2",
                           "train.collective_timeout_s=120", *explode))
    assert "\n" not in str(err.value)
