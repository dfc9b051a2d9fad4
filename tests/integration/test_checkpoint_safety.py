"""Checkpoints come from wherever a user downloaded them: loading one must never run code (item 1)."""

import os
import pickle
import warnings
import zipfile

import pytest
import torch

from tests.conftest import tiny_config
from vaegan_dist.cli.main import main
from vaegan_dist.errors import CheckpointError
from vaegan_dist.model import load_model, load_state
from vaegan_dist.train.launcher import launch


class WritesAMarker:
    """Unpickling this object calls ``open(path, "w")``: the file appearing means code ran."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _crafted(checkpoint_dir, marker):
    """A checkpoint directory that passes every cheap check (a complete torch zip with the right format key)."""
    checkpoint_dir.mkdir(parents=True)
    torch.save({"format": "vaegan-dist-checkpoint/1", "step": 2, "model": {}, "config": {},
                "payload": WritesAMarker(marker)}, checkpoint_dir / "state.pt")
    assert zipfile.is_zipfile(checkpoint_dir / "state.pt")
    return checkpoint_dir


def test_crafted_checkpoint_is_refused_by_every_loader_and_its_code_never_runs(tmp_path, capsys):
    marker = tmp_path / "code-ran"
    checkpoint = _crafted(tmp_path / "run" / "checkpoint_00000002", marker)
    for load in (load_state, load_model):
        with pytest.raises(CheckpointError, match="refused to load: it holds more than tensors") as err:
            load(checkpoint)
        assert "\n" not in str(err.value)
    assert main(["sample", "--checkpoint", str(tmp_path / "run"), "--out", str(tmp_path / "s.png")]) == 2
    assert main(["reconstruct", "--checkpoint", str(checkpoint), "--data", str(tmp_path),
                 "--out", str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all("refused to load" in line for line in err)
    assert not marker.exists()


def test_resume_from_a_crafted_checkpoint_is_refused_and_its_code_never_runs(faces32, tmp_path):
    marker = tmp_path / "code-ran"
    launch(tiny_config(faces32, tmp_path, "run", "train.steps=2"))
    _crafted(tmp_path / "run" / "checkpoint_00000009", marker)  # the newest: the one a rerun resumes from
    with pytest.raises(CheckpointError, match="checkpoint_00000009/state.pt: refused to load"):
        launch(tiny_config(faces32, tmp_path, "run", "train.steps=12"))
    assert not marker.exists()


def test_saved_checkpoints_hold_only_what_weights_only_loading_accepts(faces32, tmp_path):
    launch(tiny_config(faces32, tmp_path, "plain", "train.steps=2", "objective.equilibrium=true"))
    state = torch.load(tmp_path / "plain" / "checkpoint_00000002" / "state.pt", weights_only=True)
    assert state["step"] == 2 and set(state["optimizers"]) == {"encoder", "decoder", "discriminator"}
    model, cfg, step = load_model(tmp_path / "plain")
    assert step == 2 and cfg.train.steps == 2 and not model.training
    mapped = load_state(tmp_path / "plain", mmap=True)  # what the driver reads: the same values, left on disk
    assert mapped["config"] == state["config"] and mapped["step"] == 2
    assert all(torch.equal(mapped["model"][k], v) for k, v in state["model"].items())


def test_a_file_that_is_not_a_checkpoint_gets_one_line(tmp_path):
    (tmp_path / "garbage.pt").write_bytes(os.urandom(300))
    with pytest.raises(CheckpointError, match="garbage.pt: not a readable checkpoint") as err:
        load_state(tmp_path / "garbage.pt")
    assert "\n" not in str(err.value)
    (tmp_path / "raw.pt").write_bytes(pickle.dumps({"a": 1}, protocol=4))  # torch warns on a raw pickle
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CheckpointError, match="raw.pt: not a readable checkpoint"):
            load_state(tmp_path / "raw.pt")
    assert [str(w.message) for w in caught] == []  # the one line must be all the user reads
