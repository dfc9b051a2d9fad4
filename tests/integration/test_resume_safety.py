"""Runs that resume, stop or fail must never lose or corrupt what they wrote (items 3-7 of issue 8)."""

import os
import resource
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from tests.conftest import tiny_config
from vaegan_dist.config import ConfigError, build_config
from vaegan_dist.errors import TrainingError
from vaegan_dist.model import load_state
from vaegan_dist.model.store import find_checkpoints
from vaegan_dist.train.launcher import launch
from vaegan_dist.train.session import agreed_restore_point, check_same_step

# --- the run directory is ours, or left alone (item 3) ---


def test_a_foreign_directory_is_never_written_into(faces32, tmp_path):
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "config.yaml").write_text("owner: someone else\n")
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=r"train.name.*theirs exists and is not a vaegan-dist run") as err:
        launch(tiny_config(faces32, tmp_path, "theirs", "train.steps=1"))
    assert "\n" not in str(err.value)
    assert sorted(p.name for p in foreign.iterdir()) == ["config.yaml", "notes.txt"]
    assert (foreign / "config.yaml").read_text() == "owner: someone else\n"


@pytest.mark.parametrize("config", ["{}\n", "train: {steps: 3}\n", "owner: someone else\n"])
def test_a_directory_with_a_config_yaml_that_is_not_a_whole_run_stays_foreign(faces32, tmp_path, config):
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "config.yaml").write_text(config)
    (foreign / "checkpoint_00000001").mkdir()  # even beside something that looks like a checkpoint
    with pytest.raises(ConfigError, match="is not a vaegan-dist run"):
        launch(tiny_config(faces32, tmp_path, "theirs", "train.steps=1"))
    assert sorted(p.name for p in foreign.iterdir()) == ["checkpoint_00000001", "config.yaml"]
    assert (foreign / "config.yaml").read_text() == config


def test_an_empty_directory_and_a_run_from_before_the_marker_are_ours(faces32, tmp_path):
    (tmp_path / "empty").mkdir()
    launch(tiny_config(faces32, tmp_path, "empty", "train.steps=1"))
    assert load_state(tmp_path / "empty")["step"] == 1
    (tmp_path / "empty" / ".vaegan-dist-run").unlink()  # as written by an older version
    launch(tiny_config(faces32, tmp_path, "empty", "train.steps=2"))
    assert load_state(tmp_path / "empty")["step"] == 2


# --- changed settings on resume (item 5) ---


def test_a_changed_architecture_is_refused_before_anything_is_written(faces32, tmp_path):
    launch(tiny_config(faces32, tmp_path, "arch", "train.steps=1"))
    before = {p: p.read_bytes() for p in (tmp_path / "arch").rglob("*") if p.is_file()}
    with pytest.raises(ConfigError) as err:
        launch(tiny_config(faces32, tmp_path, "arch", "train.steps=2", "model.latent_dim=12", "model.width=0.25",
                           "model.kind=gan"))
    message = str(err.value)
    assert ("\n" not in message and "model.latent_dim=8 (got 12)" in message
            and "model.width=0.125 (got 0.25)" in message)
    assert "model.kind='vaegan' (got 'gan')" in message
    after = {p: p.read_bytes() for p in (tmp_path / "arch").rglob("*") if p.is_file()}
    assert after == before


def test_the_architecture_is_checked_against_the_newest_checkpoint_not_only_config_yaml(faces32, tmp_path):
    launch(tiny_config(faces32, tmp_path, "arch2", "train.steps=1"))
    (tmp_path / "arch2" / "config.yaml").unlink()  # lost, or replaced by hand
    with pytest.raises(ConfigError, match=r"model.width=0.125 \(got 0.25\)"):
        launch(tiny_config(faces32, tmp_path, "arch2", "train.steps=2", "model.width=0.25"))


def test_changed_optimiser_settings_take_effect_on_resume(faces32, tmp_path):
    launch(tiny_config(faces32, tmp_path, "opt", "train.steps=1"))
    launch(tiny_config(faces32, tmp_path, "opt", "train.steps=2", "optim.eps=0.001", "optim.rms_decay=0.5",
                       "optim.weight_decay=0.25"))
    for name, opt in load_state(tmp_path / "opt")["optimizers"].items():
        decayed, exempt = opt["param_groups"]
        assert (decayed["eps"], decayed["alpha"], decayed["weight_decay"]) == (0.001, 0.5, 0.25), name
        assert (exempt["eps"], exempt["alpha"], exempt["weight_decay"]) == (0.001, 0.5, 0.0), name


# --- non-finite values (item 6) ---


@pytest.mark.parametrize("override", ["optim.lr_encoder=inf", "objective.gamma=nan", "optim.eps=-inf",
                                      "objective.equilibrium_value=1e400"])
def test_non_finite_config_values_are_refused(override):
    with pytest.raises(ConfigError, match=f"config key '{override.split('=')[0]}' must be a finite number"):
        build_config("smoke", [override])


def test_a_run_whose_loss_turns_nan_stops_and_keeps_its_last_good_checkpoint(faces32, tmp_path):
    launch(tiny_config(faces32, tmp_path, "nan", "train.steps=4", "train.checkpoint_every=2"))
    explode = [f"optim.lr_{n}=1e30" for n in ("encoder", "decoder", "discriminator")]
    with pytest.raises(TrainingError,
                       match=r"^step (5|6): loss term loss/l_\w+ became (nan|inf|-inf); training stopped"):
        launch(tiny_config(faces32, tmp_path, "nan", "train.steps=40", "train.checkpoint_every=2",
                           "train.log_every=2", *explode))
    kept = find_checkpoints(tmp_path / "nan")
    assert [p.name for p in kept] == ["checkpoint_00000002", "checkpoint_00000004"]
    state = load_state(kept[-1])
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_the_cli_reports_a_nan_run_in_one_line_and_exits_2(faces32, tmp_path):
    explode = [f"optim.lr_{n}=1e30" for n in ("encoder", "decoder", "discriminator")]
    args = [f"data.source={faces32}", f"train.storage_path={tmp_path}", "train.name=cli", "train.workers=0",
            "data.batch_size=8", "data.loader_workers=0", "model.width=0.125", "model.encoder_fc=32",
            "model.latent_dim=8", "model.discriminator_fc=16", "train.grid_size=8", "train.steps=30", *explode]
    out = subprocess.run([sys.executable, "-m", "vaegan_dist.cli.main", "train", *args], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.count("\n") == 1 and "became" in out.stderr and "finished" not in out.stdout
    assert not find_checkpoints(tmp_path / "cli")


# --- a full disk (item 7) ---


def _file_size_limit(limit: int):
    def apply():  # writes past the limit fail with EFBIG, as a full disk fails them with ENOSPC
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.parametrize("limit", [8_000, 300_000, 600_000, 800_000])
def test_a_checkpoint_that_cannot_be_written_is_one_line_and_leaves_nothing_behind(faces32, tmp_path, limit):
    """Wherever the write fails (torch's zip writer turns some failed writes into a RuntimeError; at 8 KB
    the sample grid fails first), the user reads one line and keeps every earlier checkpoint."""
    base = [f"data.source={faces32}", f"train.storage_path={tmp_path}", "train.name=full", "train.workers=0",
            "data.batch_size=8", "data.loader_workers=0", "model.width=0.125", "model.encoder_fc=32",
            "model.latent_dim=8", "model.discriminator_fc=16", "train.grid_size=8", "train.checkpoint_every=2"]
    launch(build_config("smoke", [*base, "train.steps=2"]))
    good = (tmp_path / "full" / "checkpoint_00000002" / "state.pt").read_bytes()
    assert len(good) > limit  # so the limit below really stops the next checkpoint
    out = subprocess.run([sys.executable, "-m", "vaegan_dist.cli.main", "train", *base, "train.steps=4"],
                         capture_output=True, text=True, timeout=120, preexec_fn=_file_size_limit(limit))
    assert out.returncode == 2, out.stderr[-2000:]
    assert (out.stderr.startswith("vaegan-dist train: error: step 4: ")
            and "could not be written (File too large" in out.stderr)
    assert out.stderr.count("\n") == 1
    run = tmp_path / "full"
    assert [p.name for p in find_checkpoints(run)] == ["checkpoint_00000002"]
    assert (run / "checkpoint_00000002" / "state.pt").read_bytes() == good
    leftovers = [p for p in run.rglob("*") if p.name.endswith(".tmp") or "checkpoint_00000004" in str(p)]
    assert leftovers == []


def test_something_else_in_a_checkpoints_place_is_one_line(faces32, tmp_path):
    launch(tiny_config(faces32, tmp_path, "inplace", "train.steps=2", "train.checkpoint_every=2"))
    (tmp_path / "inplace" / "checkpoint_00000004").write_text("not a directory")
    with pytest.raises(TrainingError, match=r"^step 4: .*checkpoint_00000004 exists and is not a checkpoint directory"):
        launch(tiny_config(faces32, tmp_path, "inplace", "train.steps=4", "train.checkpoint_every=2"))
    assert load_state(tmp_path / "inplace")["step"] == 2


def test_a_killed_checkpoint_write_is_swept_and_an_incomplete_one_named(faces32, tmp_path, capsys):
    launch(tiny_config(faces32, tmp_path, "swept", "train.steps=2", "train.checkpoint_every=2"))
    run = tmp_path / "swept"
    (run / ".checkpoint_00000004.tmp").mkdir()  # staged when the run was killed
    (run / ".checkpoint_00000004.tmp" / "state.pt").write_bytes(b"half")
    (run / "checkpoint_00000003").mkdir()  # a copy cut short
    (run / "checkpoint_00000003" / "state.pt").write_bytes(b"half")
    launch(tiny_config(faces32, tmp_path, "swept", "train.steps=4", "train.checkpoint_every=2"))
    assert "skipping checkpoint_00000003: incomplete" in capsys.readouterr().out
    assert not (run / ".checkpoint_00000004.tmp").exists() and load_state(run)["step"] == 4


@pytest.mark.parametrize("override, message", [
    ("train.name=" + "x" * 201, "at most 200 bytes"),
    ("model.latent_dim=100000000", r"must be in \[1, 65536\]"),
    ("model.encoder_fc=0", r"must be in \[1, 65536\]"),
])
def test_names_and_sizes_without_bounds_are_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        build_config("smoke", [override])


# --- every rank resumes from rank 0's choice (item 4) ---


def _rank_views(rank: int, port: int, root: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        # Rank 1's view of the storage lags: it has not seen checkpoint 6 yet (NFS attribute caching).
        point = agreed_restore_point(None, __import__("pathlib").Path(root) / f"view{rank}", rank)
        try:
            check_same_step(4 if rank == 0 else 6)
            disagreement = ""
        except TrainingError as err:
            disagreement = str(err)
        torch.save({"point": (point.origin, point.step, point.path), "disagreement": disagreement},
                   f"{out}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _complete_checkpoint(directory):
    directory.mkdir(parents=True)
    torch.save({"format": "vaegan-dist-checkpoint/1"}, directory / "state.pt")


def test_every_rank_resumes_from_the_checkpoint_rank_0_chose(tmp_path):
    for step in (4, 6):
        _complete_checkpoint(tmp_path / "view0" / f"checkpoint_{step:08d}")
    _complete_checkpoint(tmp_path / "view1" / "checkpoint_00000004")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_rank_views, args=(port, str(tmp_path), str(tmp_path)), nprocs=2, start_method="spawn")
    results = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    expected = ("disk", 6, str(tmp_path / "view0" / "checkpoint_00000006"))
    assert [r["point"] for r in results] == [expected, expected]
    assert all("ranks resumed at different steps (rank 0: 4, rank 1: 6)" in r["disagreement"] for r in results)
