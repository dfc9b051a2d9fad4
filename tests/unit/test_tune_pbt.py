"""Population-based training's parts, without Ray: what a PBT space may hold, when trials are perturbed, the head
node's shares that bound how many run at once, a trial adopting another's checkpoint, and the schedule history."""

from __future__ import annotations

import csv
import io
import json
import shlex
from pathlib import Path

import pytest
import torch

from vaegan_dist.cli.main import main
from vaegan_dist.config import ConfigError, build_config
from vaegan_dist.errors import TrainingError
from vaegan_dist.model.store import checkpoint_name, find_checkpoints
from vaegan_dist.ray_compat import HEAD_NODE_RESOURCE, TRAIN_RUN_STATE_FILE
from vaegan_tune.adopt import adopt_checkpoint
from vaegan_tune.pbt import (
    MAX_GATED,
    RAY_CLEANER_SHARE,
    check_pbt_space,
    clamp_to_space,
    gated_drivers,
    pbt_cadence,
    pbt_scheduler,
)
from vaegan_tune.schedule import Segment, lineage, read_schedule, record_segment, replay_commands, schedules_csv
from vaegan_tune.space import parse_space

pytestmark = pytest.mark.unit
SMOKE = build_config("smoke", ["train.steps=400", "train.eval_every=100", "train.checkpoint_every=100"])


def test_a_pbt_space_refuses_what_cannot_change_during_a_run():
    for line in ("model.width: {choice: [0.5, 1.0]}", "model.latent_dim: {choice: [32, 64]}",
                 "optim.algorithm: {choice: [rmsprop, adam]}"):
        parsed = parse_space(f"objective.gamma: {{loguniform: [1.0e-6, 1.0e-2]}}\n{line}\n", "s.yaml", SMOKE)
        with pytest.raises(ConfigError, match=rf"^s.yaml: key '{line.split(':')[0]}' cannot change during a run"):
            check_pbt_space(parsed)
    check_pbt_space(parse_space("objective.gamma: {loguniform: [1.0e-6, 1.0e-2]}\ndata.batch_size: {choice: [8, 16]}\n",
                                "s.yaml", SMOKE))  # a batch size may change: the data position counts images


def test_trials_are_perturbed_at_evaluations_that_have_a_checkpoint():
    cadence = pbt_cadence(SMOKE, "eval/fd", 0, given=set())
    assert (cadence.perturb_every, cadence.checkpoint_every) == (100, 100)  # default: the evaluation interval
    assert pbt_cadence(SMOKE, "eval/fd", 200, given=set()).checkpoint_every == 200
    # the user's checkpoint interval is kept where it divides the perturbation interval
    cfg = build_config("smoke", ["train.steps=400", "train.eval_every=50", "train.checkpoint_every=100"])
    assert pbt_cadence(cfg, "eval/fd", 200, given={"train.checkpoint_every"}).checkpoint_every == 100
    with pytest.raises(ConfigError, match="train.checkpoint_every=100 does not divide it"):
        pbt_cadence(cfg, "eval/fd", 150, given={"train.checkpoint_every"})
    with pytest.raises(ConfigError, match=r"^--perturb-every 150: .* evaluated every train.eval_every=100 steps"):
        pbt_cadence(SMOKE, "eval/fd", 150, given=set())
    with pytest.raises(ConfigError, match=r"^--perturb-every 400: at or beyond train.steps=400"):
        pbt_cadence(SMOKE, "eval/fd", 400, given=set())
    assert pbt_cadence(SMOKE, "loss/l_llike", 30, given=set()).perturb_every == 30  # a loss is there at every report
    two = build_config("smoke", ["train.steps=400", "train.eval_every=100", "train.keep_checkpoints=2"])
    with pytest.raises(ConfigError, match="'train.keep_checkpoints' is 2; --scheduler pbt needs 3 or more"):
        pbt_cadence(two, "eval/fd", 0, given=set())
    never = build_config("smoke", ["train.steps=400", "train.eval_every=0"])
    with pytest.raises(ConfigError, match="--metric eval/fd needs evaluations during training"):
        pbt_cadence(never, "eval/fd", 100, given=set())
    with pytest.raises(ConfigError, match=r"^the perturbation interval \(100 steps\): at or beyond train.steps=100"):
        pbt_cadence(build_config("smoke", ["train.steps=100", "train.eval_every=100"]), "eval/fd", 0, given=set())


def test_a_perturbed_value_stays_inside_the_bounds_that_were_checked():
    bounds = {"objective.gamma": (1e-6, 1e-2)}
    assert clamp_to_space({"objective.gamma": 1.2e-2, "data.batch_size": 16}, bounds) == {
        "objective.gamma": 1e-2, "data.batch_size": 16}
    assert clamp_to_space({"objective.gamma": 0.8e-6}, bounds)["objective.gamma"] == 1e-6
    assert clamp_to_space({"objective.gamma": 3e-4}, bounds)["objective.gamma"] == 3e-4


def test_pbt_mutates_every_key_of_the_space_with_its_own_distribution():
    parsed = parse_space("objective.gamma: {loguniform: [1.0e-6, 1.0e-2]}\ndata.batch_size: {choice: [8, 16, 32]}\n",
                         "s.yaml", SMOKE)
    pbt = pbt_scheduler(parsed, perturb_every=100, quantile=0.5, resample=0.0, seed=0)
    assert pbt._perturbation_interval == 100 and pbt._time_attr == "step" and pbt._quantile_fraction == 0.5
    assert pbt._hyperparam_mutations["data.batch_size"] == [8, 16, 32]
    assert type(pbt._hyperparam_mutations["objective.gamma"]).__name__ == "Float"
    assert pbt._custom_explore_fn({"objective.gamma": 1.0, "data.batch_size": 8})["objective.gamma"] == 1e-2


@pytest.mark.parametrize("fits", [1, 2, 3, 7, 9, 10, 27, 28, 29, 500])
def test_the_head_nodes_shares_admit_exactly_the_trials_that_fit(fits):
    """n drivers and the n runs' cleaners fit in the head node's one unit, n + 1 drivers do not (Ray keeps 4
    decimals); beyond MAX_GATED the shares cannot tell n from n + 1, so that many run at once."""
    n, bundle = gated_drivers(fits)
    share = bundle[HEAD_NODE_RESOURCE]
    assert n == min(fits, MAX_GATED) and list(bundle) == [HEAD_NODE_RESOURCE]
    assert share == round(share, 4)
    assert n * share + n * RAY_CLEANER_SHARE <= 1.0 < (n + 1) * share


def _checkpoint(run_dir: Path, step: int, run_name: str, weight: float, token: str = "t") -> Path:
    """A checkpoint directory as save_checkpoint writes one, with one tensor."""
    directory = run_dir / checkpoint_name(step)
    directory.mkdir(parents=True)
    torch.save({"format": "vaegan-dist-checkpoint/1", "step": step, "model": {"w": torch.full((3,), weight)},
                "config": {"train": {"name": run_name}}, "start_token": token}, directory / "state.pt")
    return directory


def test_a_trial_adopts_its_donors_checkpoint_and_forgets_its_own(tmp_path):
    donor = _checkpoint(tmp_path / "tune" / "donor", 20, "trial_b", weight=2.0, token="b1")  # Tune's copy
    run = tmp_path / "runs" / "trial_a"
    for step in (10, 20, 30):
        _checkpoint(run, step, "trial_a", weight=1.0)
    (run / "checkpoint_00000040").mkdir()  # an incomplete one goes too
    (run / ".adopting-checkpoint_00000010.tmp").mkdir()  # staged by a start that was killed
    (run / TRAIN_RUN_STATE_FILE).write_text("{}")
    adopted = adopt_checkpoint(run, "trial_a", donor)
    assert (adopted.step, adopted.run, adopted.token) == (20, "trial_b", "b1")
    assert [p.name for p in find_checkpoints(run)] == ["checkpoint_00000020"]
    assert not (run / "checkpoint_00000040").exists() and not (run / TRAIN_RUN_STATE_FILE).exists()
    state = torch.load(run / "checkpoint_00000020" / "state.pt", weights_only=True)
    assert torch.equal(state["model"]["w"], torch.full((3,), 2.0))  # the donor's weights, not its own of step 20
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no staging left behind


def test_a_trial_resumes_its_own_newest_unless_tunes_copy_is_newer(tmp_path):
    run = tmp_path / "trial_a"
    _checkpoint(run, 10, "trial_a", 1.0)
    _checkpoint(run, 20, "trial_a", 1.0)
    tunes = _checkpoint(tmp_path / "tune", 10, "trial_a", 1.0)
    assert adopt_checkpoint(run, "trial_a", tunes) is None  # Tune's is older: the run's newest is kept
    assert [p.name for p in find_checkpoints(run)] == ["checkpoint_00000010", "checkpoint_00000020"]
    newer = _checkpoint(tmp_path / "tune2", 30, "trial_a", 3.0)  # a run directory rewritten when the sweep was killed
    assert adopt_checkpoint(run, "trial_a", newer).step == 30
    assert [p.name for p in find_checkpoints(run)] == ["checkpoint_00000030"]


def test_a_link_or_file_among_the_checkpoints_is_refused_before_anything_is_removed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("not ours")
    run = tmp_path / "trial_a"
    _checkpoint(run, 5, "trial_a", 1.0)
    (run / "checkpoint_00000010").symlink_to(outside)
    donor = _checkpoint(tmp_path / "tune", 10, "trial_b", 2.0)
    with pytest.raises(TrainingError, match=r"checkpoint_00000010: not a checkpoint directory of this run"):
        adopt_checkpoint(run, "trial_a", donor)
    assert [p.name for p in find_checkpoints(run)] == ["checkpoint_00000005"]  # its own kept
    assert (outside / "keep.txt").read_text() == "not ours"
    (run / "checkpoint_00000010").unlink()
    (run / "checkpoint_00000010").write_text("a file")
    with pytest.raises(TrainingError, match="not a checkpoint directory of this run"):
        adopt_checkpoint(run, "trial_a", donor)


@pytest.mark.parametrize("step", ["10", 10.7, True, -5, None])
def test_a_checkpoint_whose_step_is_not_a_step_number_is_refused(step, tmp_path):
    bad = tmp_path / "tune" / "checkpoint_000001"
    bad.mkdir(parents=True)
    torch.save({"format": "vaegan-dist-checkpoint/1", "step": step, "model": {}, "config": {"train": {"name": "b"}}},
               bad / "state.pt")
    with pytest.raises(TrainingError, match="not a step number"):
        adopt_checkpoint(tmp_path / "run", "trial_a", bad)


def test_an_incomplete_checkpoint_from_tune_is_refused_in_one_line(tmp_path):
    broken = tmp_path / "tune" / "checkpoint_000001"
    broken.mkdir(parents=True)
    (broken / "state.pt").write_bytes(b"not a zip")
    with pytest.raises(TrainingError, match="the checkpoint Tune handed this trial is incomplete"):
        adopt_checkpoint(tmp_path / "run", "trial_a", broken)
    nameless = _checkpoint(tmp_path / "tune2", 10, "", 1.0)
    with pytest.raises(TrainingError, match="does not say which run wrote it"):
        adopt_checkpoint(tmp_path / "run", "trial_a", nameless)


def test_a_schedule_is_appended_to_whole_and_read_back(tmp_path):
    run = tmp_path / "t"
    run.mkdir()
    record_segment(run, Segment(0, {"objective.gamma": 1e-3}, "a1"))
    record_segment(run, Segment(20, {"objective.gamma": 2e-3}, "a2", "donor", "d1"))
    assert read_schedule(run) == [Segment(0, {"objective.gamma": 1e-3}, "a1"),
                                  Segment(20, {"objective.gamma": 2e-3}, "a2", "donor", "d1")]
    for line, message in (('{"step": "x"}', "needs step, params and token"), ("[1, 2]", "needs step"),
                          ("{", "not JSON"), ("[" * 100_000 + "]" * 100_000, "not JSON"),
                          ('{"step": 1e400, "params": {}, "token": "t"}', "step must be a step number"),
                          ('{"step": true, "params": {}, "token": "t"}', "step must be a step number"),
                          ('{"step": -5, "params": {}, "token": "t"}', "step must be a step number"),
                          ('{"step": 5, "params": [["a", 1]], "token": "t"}', "params must map"),
                          ('{"step": 5, "params": {}, "token": 5}', "must be strings"),
                          ('{"step": 5, "params": {}, "token": "t", "from_token": {"x": 1}}', "must be strings")):
        (run / "schedule.jsonl").write_text(line + "\n")
        with pytest.raises(TrainingError, match=rf"schedule.jsonl:1: .*{message}"):
            read_schedule(run)
    (run / "schedule.jsonl").write_bytes(b"\xff\xfe\n")
    with pytest.raises(TrainingError, match="schedule.jsonl: unreadable"):
        read_schedule(run)


def _write(runs: Path, trial: str, *segments: Segment) -> None:
    (runs / trial).mkdir(parents=True)
    (runs / trial / "schedule.jsonl").write_text("".join(json.dumps(s.__dict__) + "\n" for s in segments))


def test_the_lineage_follows_each_checkpoint_to_the_start_that_wrote_it(tmp_path):
    """c copied b's checkpoint of step 20, written by b's second start, which had copied a's of step 10. a went
    on after that (a copy of c at 30) and b was paused and resumed (its third start, same values): neither is part
    of what c's weights came from."""
    _write(tmp_path, "a", Segment(0, {"g": 1}, "a1"), Segment(30, {"g": 9}, "a2", "c", "c2"))
    _write(tmp_path, "b", Segment(0, {"g": 2}, "b1"), Segment(10, {"g": 3}, "b2", "a", "a1"),
           Segment(30, {"g": 3}, "b3", None, "b2"))
    _write(tmp_path, "c", Segment(0, {"g": 4}, "c1"), Segment(20, {"g": 5}, "c2", "b", "b2"),
           Segment(30, {"g": 5}, "c3", None, "c2"))
    chain = lineage(tmp_path, "c")
    assert [(t, s.token) for t, s in chain] == [("a", "a1"), ("b", "b2"), ("c", "c2"), ("c", "c3")]
    commands = replay_commands(chain, 40, ["--preset", "smoke"], "replay")  # c's resume at 30 is not a change
    assert [shlex.split(c)[-3:] for c in commands] == [["g=1", "train.name=replay", "train.steps=10"],
                                                       ["g=3", "train.name=replay", "train.steps=20"],
                                                       ["g=5", "train.name=replay", "train.steps=40"]]
    rows = list(csv.DictReader(io.StringIO(schedules_csv(tmp_path, ["c", "b"]))))
    assert [(r["trial_id"], r["from_step"], r["copied_from"], r["g"]) for r in rows] == [
        ("c", "0", "", "4"), ("c", "20", "b", "5"), ("c", "30", "", "5"),
        ("b", "0", "", "2"), ("b", "10", "a", "3"), ("b", "30", "", "3")]


def test_a_lineage_that_cannot_be_traced_says_so(tmp_path):
    _write(tmp_path, "b", Segment(10, {"g": 3}, "b1", "gone", "g1"))
    with pytest.raises(TrainingError, match=r"gone/schedule.jsonl: no segment wrote the checkpoint of step 10"):
        lineage(tmp_path, "b")
    # corrupt: a checkpoint of step 10 written by a start from step 10 (it could only come from an earlier one)
    _write(tmp_path, "x", Segment(10, {"g": 3}, "x1", None, "x1"))
    with pytest.raises(TrainingError, match="cannot be traced"):
        lineage(tmp_path, "x")
    _write(tmp_path, "z", Segment(10, {"g": 3}, "z1"))  # no checkpoint named at all
    with pytest.raises(TrainingError, match="cannot be traced"):
        lineage(tmp_path, "z")


@pytest.mark.parametrize("args, message", [
    (["--scheduler", "asha", "--perturb-every", "100"], "--perturb-every is a setting of --scheduler pbt"),
    (["--quantile", "0.25"], "--quantile is a setting of --scheduler pbt (got --scheduler asha)"),  # its default too
    (["--seed", "-1"], "argument --seed: -1 is not in 0..4294967295"),
    (["--scheduler", "pbt", "--quantile", "0.7"], "--quantile 0.7: the share of trials that copy"),
    (["--scheduler", "pbt", "--resample", "1.5"], "--resample 1.5: a probability, in [0, 1]"),
    (["--scheduler", "pbt", "--search", "optuna"], "use --search random or grid"),
    (["--scheduler", "pbt", "train.storage_path=s3://bucket/x"], "is a URL; a trial adopts"),
    (["--scheduler", "pbt", "--perturb-every", "150", "train.eval_every=100"], "use a multiple of it"),
])
def test_pbt_settings_are_refused_before_ray_starts(args, message, capsys):
    try:
        code = main(["tune", "--space", "gamma", *args])
    except SystemExit as exit_:  # argparse's own refusals
        code = exit_.code
    assert code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("vaegan-dist tune: error: ") and message in last, last


@pytest.mark.parametrize("line, message", [
    ("model.latent_dim: {choice: [32, 64]}", "key 'model.latent_dim' cannot change during a run"),
    ("train.keep_checkpoints: {choice: [1, 2]}", "key 'train.keep_checkpoints' is set by --scheduler pbt"),
    ("train.checkpoint_every: {choice: [7, 13]}", "key 'train.checkpoint_every' is set by --scheduler pbt"),
])
def test_a_pbt_space_with_a_key_pbt_cannot_perturb_is_refused_naming_it(line, message, tmp_path, capsys):
    space = tmp_path / "s.yaml"
    space.write_text(line + "\n")
    assert main(["tune", "--space", str(space), "--scheduler", "pbt", f"train.storage_path={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert [p.name for p in tmp_path.iterdir()] == ["s.yaml"]  # no sweep directory


def test_train_v2s_run_state_file_is_the_one_forgotten():
    from ray.train.v2._internal.constants import CHECKPOINT_MANAGER_SNAPSHOT_FILENAME

    assert TRAIN_RUN_STATE_FILE == CHECKPOINT_MANAGER_SNAPSHOT_FILENAME  # ray_compat item 9


def test_a_stopped_start_of_a_trial_writes_no_checkpoint_into_a_run_a_later_start_owns(tmp_path):
    from types import SimpleNamespace

    from vaegan_dist.train.loop import OWNER_FILE, check_still_owner
    from vaegan_dist.train.storage import RunStorage

    run = RunStorage(str(tmp_path), "trial_a")
    run.local_dir.mkdir()
    (run.local_dir / OWNER_FILE).write_text("second\n")
    check_still_owner(SimpleNamespace(start_token="second", run=run), 30)  # the owner writes
    check_still_owner(SimpleNamespace(start_token="", run=run), 30)  # not a PBT trial: nothing to check
    with pytest.raises(TrainingError, match="belongs to a later start of this trial"):
        check_still_owner(SimpleNamespace(start_token="first", run=run), 30)
