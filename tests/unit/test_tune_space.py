"""Search spaces, resource arithmetic and results of `vaegan-dist tune`, without starting Ray."""

from __future__ import annotations

import csv
import io
import shlex
from types import SimpleNamespace

import pytest

from tune.results import TrialRow, collect_rows, continue_command, results_csv, sort_rows, trial_status
from tune.space import SPACES_DIR, load_space, parse_space
from tune.sweep import SweepSettings, check_metric, placeable_trials
from vaegan_dist.cli.main import main
from vaegan_dist.config import ConfigError, build_config

pytestmark = pytest.mark.unit
SMOKE = build_config("smoke")


def space(text: str):
    return parse_space(text, "space.yaml", SMOKE)


def test_a_space_reads_every_distribution_with_the_config_types():
    parsed = space("objective.gamma: {loguniform: [1e-7, 1.0e-1]}\n"  # YAML 1.1 reads 1e-7 as a string
                   "objective.equilibrium_margin: {uniform: [0.2, 0.5]}\n"
                   "data.batch_size: {choice: [16, 32]}\n"
                   "objective.generator_loss: {grid: [minimax, non_saturating]}\n")
    dims = {d.key: d for d in parsed.dimensions}
    assert dims["objective.gamma"].values == (1e-7, 0.1)
    assert dims["data.batch_size"].values == (16, 32) and all(type(v) is int for v in dims["data.batch_size"].values)
    assert dims["objective.generator_loss"].kind == "grid"
    assert parsed.grid_size == 2
    assert parsed.trial_count("random", 3) == (3, 6)  # Ray Tune crosses samples with grid keys


@pytest.mark.parametrize("text, expected", [
    ("objective.gama: {loguniform: [1e-7, 1e-1]}", "unknown config key 'objective.gama' (did you mean 'objective.gamma'?)"),
    ("objective.gamma: {lognormal: [1e-7, 1e-1]}", "key 'objective.gamma': unknown distribution 'lognormal'"),
    ("objective.gamma: {loguniform: [0, 1e-1]}", "loguniform needs low > 0"),
    ("objective.gamma: {loguniform: [1e-1, 1e-7]}", "range [0.1, 1e-07] is empty"),
    ("objective.gamma: {uniform: [-1, 1]}", "config key 'objective.gamma' must be >= 0; got -1.0"),
    ("objective.gamma: {uniform: [0, nan]}", "'nan' is not a finite number"),
    ("objective.gamma: {uniform: [0, 1, 2]}", "uniform needs [low, high]"),
    ("objective.gamma: {choice: []}", "choice needs a non-empty list"),
    ("objective.gamma: {choice: [0.1, 0.1]}", "lists a value twice"),
    ("objective.gamma: 0.01", "expected one distribution"),
    ("data.batch_size: {loguniform: [16, 64]}", "key 'data.batch_size' takes int, not a continuous range"),
    ("data.batch_size: {choice: [1, 16]}", "config key 'data.batch_size' must be at least 2"),
    ("data.batch_size: {choice: [16.5]}", "config key 'data.batch_size' expects an integer"),
    ("objective.equilibrium_margin: {uniform: [0.2, 0.9]}", "'objective.equilibrium_margin' must be in [0, objective.equilibrium_value)"),
    ("model.kind: {grid: [vaegan, vae_gan]}", "config key 'model.kind' must be one of"),
    ("train.steps: {choice: [10, 20]}", "key 'train.steps' cannot be swept"),
    ("train.name: {choice: [a, b]}", "key 'train.name' cannot be swept"),
    ("optim: {choice: [1]}", "config key 'optim' is a group"),
    ("[1, 2]", "expected a mapping of config keys"),
    ("", "expected a mapping of config keys"),
    ("objective.gamma: {loguniform: [1e-7, 1e-1]", "not valid YAML"),
])
def test_a_bad_space_is_one_line_naming_the_file_and_the_key(text, expected):
    with pytest.raises(ConfigError) as err:
        space(text)
    message = str(err.value)
    assert message.startswith("space.yaml: ") and expected in message and "\n" not in message


def test_values_are_checked_with_the_base_config():
    """A margin of 0.6 is fine under the default equilibrium_value 0.68, not under 0.5."""
    text = "objective.equilibrium_margin: {uniform: [0.2, 0.6]}"
    space(text)
    with pytest.raises(ConfigError, match="equilibrium_margin"):
        parse_space(text, "space.yaml", build_config("smoke", ["objective.equilibrium_value=0.5"]))


def test_search_algorithms_take_what_they_can_sample():
    mixed = space("objective.gamma: {loguniform: [1e-7, 1e-1]}\ndata.batch_size: {grid: [16, 32]}")
    with pytest.raises(ConfigError, match="'objective.gamma' is loguniform; --search grid needs grid or choice"):
        mixed.for_search("grid")
    with pytest.raises(ConfigError, match="'data.batch_size' is a grid; --search optuna samples"):
        mixed.for_search("optuna")
    discrete = space("data.batch_size: {choice: [16, 32, 64]}\nobjective.fakes: {grid: [prior, prior_and_reconstruction]}")
    assert discrete.trial_count("grid", None) == (1, 6)
    with pytest.raises(ConfigError, match="--trials 4: --search grid runs each of the 6 combinations"):
        discrete.trial_count("grid", 4)


def test_the_ready_spaces_load_for_every_preset():
    for file in sorted(SPACES_DIR.glob("*.yaml")):
        for preset in ("smoke", "celeba64"):
            assert load_space(file, build_config(preset)).dimensions
    assert {p.stem for p in SPACES_DIR.glob("*.yaml")} == {"gamma", "lrs", "paper"}
    assert [d.key for d in load_space("gamma", SMOKE).dimensions] == ["objective.gamma"]  # found by name


def test_a_trial_fits_when_its_workers_and_driver_fit_together():
    assert placeable_trials({"CPU": 2}, 1, 0.49, gpu=False) == 4  # 4 x (0.49 + 0.01) = 2.0
    assert placeable_trials({"CPU": 2}, 2, 1.0, gpu=False) == 0  # 2.01 > 2
    assert placeable_trials({"CPU": 2}, 2, 0.49, gpu=False) == 2
    assert placeable_trials({"CPU": 64, "GPU": 8}, 2, 4, gpu=True) == 4  # GPUs bound it: 8 / 2
    assert placeable_trials({"CPU": 64, "GPU": 1}, 2, 4, gpu=True) == 0


def test_the_metric_must_be_one_training_reports():
    check_metric("eval/fd", has_evaluator=True, eval_every=100)
    with pytest.raises(ConfigError, match="--metric 'eval/fid' is not reported during training"):
        check_metric("eval/fid", True, 100)
    with pytest.raises(ConfigError, match="needs evaluations during training; got train.eval_every=0"):
        check_metric("eval/fd", True, 0)
    with pytest.raises(ConfigError, match="needs an evaluator"):
        check_metric("eval/recall", False, 100)
    assert SweepSettings("", "", metric="eval/fd").resolved_mode() == "min"
    assert SweepSettings("", "", metric="eval/attr_agreement").resolved_mode() == "max"
    assert SweepSettings("", "", metric="loss/l_llike").resolved_mode() == "min"


def _row(trial: str, status: str, **metrics: float) -> TrialRow:
    return TrialRow(trial, status, {"objective.gamma": 0.1}, metrics, 40, f"/runs/{trial}", "", "")


def test_results_are_sorted_best_first_with_unscored_trials_last():
    rows = [_row("a", "completed", **{"eval/fd": 30.0}), _row("b", "error"), _row("c", "stopped early", **{"eval/fd": 50.0}),
            _row("d", "completed", **{"eval/fd": 10.0})]
    assert [r.trial_id for r in sort_rows(rows, "eval/fd", "min")] == ["d", "a", "c", "b"]
    assert [r.trial_id for r in sort_rows(rows, "eval/fd", "max")] == ["c", "a", "d", "b"]
    table = list(csv.DictReader(io.StringIO(results_csv(sort_rows(rows, "eval/fd", "min"), "eval/fd"))))
    assert [(r["rank"], r["trial_id"], r["eval/fd"]) for r in table] == [("1", "d", "10.0"), ("2", "a", "30.0"),
                                                                          ("3", "c", "50.0"), ("4", "b", "")]
    assert table[0]["objective.gamma"] == "0.1" and table[0]["run_dir"] == "/runs/d"


def test_a_trial_status_comes_from_tune_and_the_steps_reached():
    assert trial_status("TERMINATED", 400, 400) == "completed"
    assert trial_status("TERMINATED", 100, 400) == "stopped early"
    assert trial_status("ERROR", 100, 400) == "error"
    assert trial_status("RUNNING", 100, 400) == "unfinished"
    trial = SimpleNamespace(trial_id="x1", status="TERMINATED", config={"objective.gamma": 0.5},
                            last_result={"step": 100, "eval/fd": 3.0, "loss/l_gan": 1.0, "perf/images_per_s": 9.0,
                                         "config": {"objective.gamma": 0.5}}, error_msg=None)
    (row,) = collect_rows([trial], "/nowhere/runs", 400)
    assert (row.status, row.step, row.metrics, row.run_dir) == ("stopped early", 100,
                                                               {"eval/fd": 3.0, "loss/l_gan": 1.0}, "/nowhere/runs/x1")


def test_the_continue_command_rebuilds_the_trials_exact_config():
    params = {"objective.gamma": 0.0001234567890123, "data.batch_size": 32, "objective.generator_loss": "minimax"}
    command = continue_command("smoke", ["train.workers=1", "data.source=/my data"], params, "/s/runs", "t_1", 800)
    args = shlex.split(command)
    assert args[:4] == ["vaegan-dist", "train", "--preset", "smoke"]
    cfg = build_config("smoke", args[4:])
    assert cfg.objective.gamma == params["objective.gamma"] and cfg.data.batch_size == 32
    assert cfg.objective.generator_loss == "minimax" and cfg.data.source == "/my data"
    assert (cfg.train.storage_path, cfg.train.name, cfg.train.steps) == ("/s/runs", "t_1", 800)


def test_the_cli_refuses_a_bad_space_before_starting_ray(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("objective.gamma: {loguniform: [1e-1, 1e-7]}\n")
    assert main(["tune", "--space", str(bad), f"train.storage_path={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vaegan-dist tune: error: ") and str(bad) in err and "objective.gamma" in err
    assert len(err.splitlines()) == 1
    assert main(["tune", "--space", str(tmp_path / "missing.yaml")]) == 2
    assert "no such file (ready spaces: gamma, lrs, paper)" in capsys.readouterr().err
    assert main(["tune", "--resume", "--space", "gamma"]) == 2
    assert "--resume needs --name" in capsys.readouterr().err
    assert main(["tune", "--resume", "--name", "nothing-here", f"train.storage_path={tmp_path}"]) == 2
    assert "is not a sweep started by vaegan-dist tune" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())[1:]  # nothing written but the bad space itself
