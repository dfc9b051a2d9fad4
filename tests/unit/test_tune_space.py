"""Search spaces, resource arithmetic and results of `vaegan-dist tune`, without starting Ray."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import shlex
from types import SimpleNamespace

import pytest

from vaegan_dist.cli.main import main
from vaegan_dist.config import ConfigError, build_config
from vaegan_tune.results import TrialRow, collect_rows, continue_command, results_csv, sort_rows, trial_status
from vaegan_tune.space import SPACES_DIR, load_space_text, parse_space
from vaegan_tune.sweep import SweepSettings, check_metric, placeable_trials

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
    ("objective.gama: {loguniform: [1e-7, 1e-1]}",
     "unknown config key 'objective.gama' (did you mean 'objective.gamma'?)"),
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
    ("objective.equilibrium_margin: {uniform: [0.2, 0.9]}",
     "'objective.equilibrium_margin' must be in [0, objective.equilibrium_value)"),
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
    discrete = space("data.batch_size: {choice: [16, 32, 64]}\n"
                     "objective.fakes: {grid: [prior, prior_and_reconstruction]}")
    assert discrete.trial_count("grid", None) == (1, 6)
    with pytest.raises(ConfigError, match="--trials 4: --search grid runs each of the 6 combinations"):
        discrete.trial_count("grid", 4)


def test_the_ready_spaces_load_for_every_preset():
    for file in sorted(SPACES_DIR.glob("*.yaml")):
        for preset in ("smoke", "celeba64"):
            assert parse_space(*load_space_text(file), build_config(preset)).dimensions
    assert {p.stem for p in SPACES_DIR.glob("*.yaml")} == {"gamma", "lrs", "paper", "recipe"}
    # found by name
    assert [d.key for d in parse_space(*load_space_text("gamma"), SMOKE).dimensions] == ["objective.gamma"]


def test_a_trial_fits_when_its_workers_and_driver_fit_together():
    assert placeable_trials({"CPU": 2}, 1, 0.49, gpu=False) == 4  # 4 x (0.49 + 0.01) = 2.0
    assert placeable_trials({"CPU": 2}, 2, 1.0, gpu=False) == 0  # 2.01 > 2
    assert placeable_trials({"CPU": 2}, 2, 0.49, gpu=False) == 2
    assert placeable_trials({"CPU": 64, "GPU": 8}, 2, 4, gpu=True) == 4  # GPUs bound it: 8 / 2
    assert placeable_trials({"CPU": 64, "GPU": 1}, 2, 4, gpu=True) == 0
    # A worker must fit on one node: 3 CPUs per worker fit nowhere on two 2-CPU nodes.
    assert placeable_trials({"CPU": 4}, 1, 3, gpu=False, nodes=[{"CPU": 2}, {"CPU": 2}]) == 0
    assert placeable_trials({"CPU": 6}, 2, 2, gpu=False, nodes=[{"CPU": 2}] * 3) == 1  # 6 / (2 x 2 + 0.01)
    assert placeable_trials({"CPU": 8, "GPU": 1}, 1, 1, gpu=True, nodes=[{"CPU": 4}, {"CPU": 4, "GPU": 1}]) == 1


def test_the_metric_must_be_one_every_trial_reports():
    check_metric("eval/fd", ["vaegan"], has_evaluator=True, eval_every=100)
    check_metric("eval/fd", ["gan", "vae"], True, 100)
    check_metric("loss/l_llike", ["vae"], False, 0)
    with pytest.raises(ConfigError, match="--metric 'eval/fid' is not reported during training"):
        check_metric("eval/fid", ["vaegan"], True, 100)
    with pytest.raises(ConfigError, match="needs evaluations during training; got train.eval_every=0"):
        check_metric("eval/fd", ["vaegan"], True, 0)
    with pytest.raises(ConfigError, match="needs an evaluator"):
        check_metric("eval/recall", ["vaegan"], False, 100)
    with pytest.raises(ConfigError, match="--metric eval/fd_recon: model.kind=gan never reports it .it has no encoder"):
        check_metric("eval/fd_recon", ["vaegan", "gan"], True, 100)
    with pytest.raises(ConfigError, match="model.kind=vae never reports it .it has no discriminator"):
        check_metric("loss/l_gan", ["vae"], True, 100)
    assert SweepSettings("", "", metric="eval/fd").resolved_mode() == "min"
    assert SweepSettings("", "", metric="eval/attr_agreement").resolved_mode() == "max"
    assert SweepSettings("", "", metric="loss/l_llike").resolved_mode() == "min"


def _row(trial: str, status: str, step: int = 40, **metrics: float) -> TrialRow:
    return TrialRow(trial, status, {"objective.gamma": 0.1}, metrics, step, f"/runs/{trial}", "", "")


def test_results_are_sorted_best_first_with_unscored_trials_last():
    rows = [_row("a", "completed", **{"eval/fd": 30.0}), _row("b", "error"),
            _row("c", "stopped early", **{"eval/fd": 50.0}),
            _row("d", "completed", **{"eval/fd": 10.0})]
    assert [r.trial_id for r in sort_rows(rows, "eval/fd", "min")] == ["d", "a", "c", "b"]
    assert [r.trial_id for r in sort_rows(rows, "eval/fd", "max")] == ["c", "a", "d", "b"]
    table = list(csv.DictReader(io.StringIO(results_csv(sort_rows(rows, "eval/fd", "min"), "eval/fd"))))
    assert [(r["rank"], r["trial_id"], r["eval/fd"]) for r in table] == [("1", "d", "10.0"), ("2", "a", "30.0"),
                                                                          ("3", "c", "50.0"), ("4", "b", "")]
    assert table[0]["objective.gamma"] == "0.1" and table[0]["run_dir"] == "/runs/d"


def test_a_trial_stopped_early_ranks_below_the_ones_that_trained_further_whatever_its_early_metric():
    """As measured in the ASHA test: stopped at step 10 with fd 71.8, kept to step 120 with fd 80.6."""
    rows = [_row("stopped", "stopped early", 10, **{"eval/fd": 71.8}), _row("kept", "completed", 120,
            **{"eval/fd": 80.6}), _row("middle", "stopped early", 40, **{"eval/fd": 75.0})]
    assert [r.trial_id for r in sort_rows(rows, "eval/fd", "min")] == ["kept", "middle", "stopped"]


def test_a_trial_status_comes_from_tune_and_the_steps_reached():
    assert trial_status("TERMINATED", 400, 400) == "completed"
    assert trial_status("TERMINATED", 100, 400) == "stopped early"
    assert trial_status("ERROR", 100, 400) == "error"
    assert trial_status("RUNNING", 100, 400) == "unfinished"
    trial = SimpleNamespace(trial_id="x1", status="TERMINATED", config={"objective.gamma": 0.5},
                            last_result={"step": 100, "eval/fd": 3.0, "loss/l_gan": 1.0, "perf/images_per_s": 9.0,
                                         "config": {"objective.gamma": 0.5}}, get_error=lambda: None)
    failed = SimpleNamespace(trial_id="x2", status="ERROR", config={}, last_result={},
                             get_error=lambda: "Traceback ...\n  File x\nTrainingError: step 7: loss/l_gan is nan")
    row, bad = collect_rows([trial, failed], "/nowhere/runs", 400)
    assert (row.status, row.step, row.metrics, row.run_dir) == ("stopped early", 100,
                                                               {"eval/fd": 3.0, "loss/l_gan": 1.0}, "/nowhere/runs/x1")
    assert (bad.status, bad.error) == ("error", "TrainingError: step 7: loss/l_gan is nan")


def test_a_local_run_that_evaluated_after_tunes_last_result_is_summarised_by_its_own_last_evaluation(tmp_path):
    """ASHA stops a trial after its report at step 20; its worker still evaluates at step 30 before it stops.
    results.csv must say step 30 with step 30's values, as the run's TensorBoard and checkpoint do."""
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "runs" / "t1"
    writer = SummaryWriter(str(run / "tensorboard"))
    writer.add_scalar("eval/fd", 99.0, 40, walltime=1000.0)  # a stale event of an earlier attempt, beyond
    writer.add_scalar("eval/fd", 5.0, 20, walltime=2000.0)
    writer.add_scalar("loss/l_gan", 1.5, 20, walltime=2000.0)
    writer.add_scalar("eval/fd", 4.0, 30, walltime=3000.0)
    writer.add_scalar("eval/kid", 0.25, 30, walltime=3000.0)
    writer.add_scalar("loss/l_gan", 1.25, 30, walltime=3000.0)
    writer.add_scalar("perf/images_per_s", 7.0, 30, walltime=3000.0)
    writer.close()
    stopped = SimpleNamespace(trial_id="t1", status="TERMINATED", config={}, get_error=lambda: None,
                              last_result={"step": 20, "eval/fd": 5.0, "loss/l_gan": 1.5})
    (row,) = collect_rows([stopped], str(tmp_path / "runs"), 400)
    assert (row.step, row.metrics, row.status) == (30, {"eval/fd": 4.0, "eval/kid": 0.25, "loss/l_gan": 1.25},
                                                   "stopped early")
    # Tune's result at the run's own last step stays as Tune has it (full precision, no TensorBoard rounding).
    exact = SimpleNamespace(**{**vars(stopped), "last_result": {"step": 30, "eval/fd": 4.000000001}})
    assert collect_rows([exact], str(tmp_path / "runs"), 400)[0].metrics == {"eval/fd": 4.000000001}


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
    assert "no such file (ready spaces: gamma, lrs, paper, recipe)" in capsys.readouterr().err
    assert main(["tune", f"train.storage_path={tmp_path}"]) == 2
    assert "or gamma | lrs | paper | recipe" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["tune", "--help"])
    assert "gamma | lrs | paper | recipe" in " ".join(capsys.readouterr().out.split())
    assert main(["tune", "--resume"]) == 2
    assert "--resume needs --name" in capsys.readouterr().err
    assert main(["tune", "--resume", "--name", "nothing-here", f"train.storage_path={tmp_path}"]) == 2
    assert "is not a sweep started by vaegan-dist tune" in capsys.readouterr().err
    assert main(["tune", "--space", "gamma", "--name", "../../escape", f"train.storage_path={tmp_path}"]) == 2
    assert "--name '../../escape': use letters, digits" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())[1:]  # nothing written but the bad space itself


def test_a_sweep_names_its_trials_itself(tmp_path, capsys):
    assert main(["tune", "--space", "gamma", "train.name=mine", f"train.storage_path={tmp_path}"]) == 2
    assert "override 'train.name=mine': each trial's run is named after its trial id" in capsys.readouterr().err
    assert main(["tune", "--space", "gamma", "train.workers=0", f"train.storage_path={tmp_path}"]) == 2
    assert "each trial of a sweep runs a fixed number (>= 1) of Ray Train workers" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("text, expected", [
    ("objective.gamma: {uniform: [0, 1" + "0" * 400 + "]}", "is not a number"),
    ("a: " + "[" * 3000 + "]" * 3000, "nested too deeply"),
    ("objective.gamma: {grid: [0.1]}\nobjective.gamma: {grid: [0.2]}", "key 'objective.gamma' is given twice"),
    ("data.image_size: {grid: [32, 64]}", "key 'data.image_size' cannot be swept: the data is opened and checked once"),
    ("objective.equilibrium_value: {uniform: [0.4, 0.9]}\nobjective.equilibrium_margin: {uniform: [0.2, 0.39]}\n"
     "objective.gamma: {grid: [0.1]}", None),
    ("objective.equilibrium_value: {uniform: [0.4, 0.9]}\nobjective.equilibrium_margin: {uniform: [0.2, 0.6]}",
     "a trial could get objective.equilibrium_value=0.4, objective.equilibrium_margin=0.6, and then config key "
     "'objective.equilibrium_margin' must be in [0, objective.equilibrium_value)"),
])
def test_hostile_spaces(text, expected):
    if expected is None:
        space(text)
        return
    with pytest.raises(ConfigError) as err:
        space(text)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_a_sweep_has_a_bounded_number_of_trials():
    big = space("data.batch_size: {choice: [" + ", ".join(str(v) for v in range(2, 202)) + "]}\n"
                "model.latent_dim: {grid: [" + ", ".join(str(v) for v in range(1, 101)) + "]}")
    with pytest.raises(ConfigError, match="this sweep would run 20000 trials; at most 10000"):
        big.for_search("grid") and big.trial_count("grid", None)
    assert big.trial_count("random", 100) == (100, 10000)


def test_asha_compares_trials_at_the_evaluation_steps():
    from vaegan_tune.sweep import _scheduler

    asha = _scheduler(SweepSettings("", "", metric="eval/fd"), steps=400, eval_every=100, checkpoint_every=40)
    assert (asha._time_attr, asha._max_t, asha._reduction_factor) == ("step", 400, 2)
    assert [b._rungs[i][0] for b in asha._brackets[:1] for i in range(len(b._rungs))] == [400, 200, 100]
    by_loss = _scheduler(SweepSettings("", "", metric="loss/l_llike"), steps=400, eval_every=100, checkpoint_every=40)
    assert by_loss._brackets[0]._rungs[-1][0] == 40  # a loss reaches Tune at the checkpoint steps
    assert type(_scheduler(SweepSettings("", "", scheduler="fifo"), 400, 100, 20)).__name__ == "FIFOScheduler"


def test_only_reports_holding_the_metric_reach_tune():
    from vaegan_tune.trial import TRIAL_STARTED, TrialReports

    sent = []
    callback = TrialReports(SimpleNamespace(put=sent.append), "eval/fd", 123.0)
    callback.after_report(None, [{"step": 20, "loss/l_gan": 1.0}], None)
    callback.after_report(None, [{"step": 40, "eval/fd": 9.0}, {"step": 40}], SimpleNamespace(path="/r/checkpoint_40"))
    assert sent == [{"step": 40, "eval/fd": 9.0, TRIAL_STARTED: 123.0, "checkpoint_path": "/r/checkpoint_40"}]


def test_a_pbt_trial_forwards_the_checkpoints_of_its_perturbation_steps_only():
    """PBT copies a donor's last reported checkpoint, refreshed at its perturbation steps: a report without one
    would leave Tune ranking a step whose checkpoint it does not hold, and one between perturbation steps would
    push the donor's out of the few Tune keeps before it is copied."""
    from vaegan_tune.trial import TrialReports

    sent = []
    callback = TrialReports(SimpleNamespace(put=sent.append), "eval/fd", 0.0, perturb_every=80, steps=200)
    for step, checkpoint in ((40, None), (40, "c40"), (80, None), (80, "c80"), (160, "c160"), (200, "c200")):
        callback.after_report(None, [{"step": step, "eval/fd": 9.0}], checkpoint and SimpleNamespace(path=checkpoint))
    assert [(m["step"], m["checkpoint_path"]) for m in sent] == [(80, "c80"), (160, "c160"), (200, "c200")]


def test_a_trial_is_fitted_to_the_cluster_only_where_the_user_left_the_choice():
    from vaegan_tune.sweep import fit_trial

    two = [{"CPU": 2}]
    # the smoke preset on a 2-core machine: 2 x 1 CPU + the driver's 0.01 does not fit; 2 x 0.99 does
    assert fit_trial({"CPU": 2}, two, 2, 1.0, False, given=set()) == (2, 0.99)
    assert placeable_trials({"CPU": 2}, 2, 0.99, gpu=False, nodes=two) == 1
    assert fit_trial({"CPU": 16}, [{"CPU": 16}], 2, 1.0, False, given=set()) == (2, 1.0)  # fits: unchanged
    # CPUs per worker given: fewer workers instead
    assert fit_trial({"CPU": 2}, two, 2, 1.0, False, given={"train.cpus_per_worker"}) == (1, 1.0)
    # both given: unchanged, so the caller refuses in one line naming them
    assert fit_trial({"CPU": 2}, two, 2, 1.0, False, given={"train.workers", "train.cpus_per_worker"}) == (2, 1.0)
    # a worker must fit on one node: 4 workers over two 2-CPU nodes get 0.99 each, placed 2 and 2
    assert fit_trial({"CPU": 4}, [{"CPU": 2}] * 2, 4, 1.0, False, given=set()) == (4, 0.99)
    # never fitted to a useless slice: 8 workers on 1 CPU become 3 x 0.33 (4 x 0.24 is too thin)
    assert fit_trial({"CPU": 1}, [{"CPU": 1}], 8, 1.0, False, given=set()) == (3, 0.33)
    assert fit_trial({"CPU": 0.5}, [{"CPU": 0.5}], 2, 1.0, False, given=set()) == (1, 0.49)
    # GPUs: at most one worker per GPU
    assert fit_trial({"CPU": 32, "GPU": 2}, [{"CPU": 32, "GPU": 2}], 4, 4.0, True, given=set()) == (2, 4.0)


def test_resume_takes_the_sweep_as_it_was_started(tmp_path, capsys):
    from vaegan_tune.sweep import saved_settings

    sweep = tmp_path / "s1"
    sweep.mkdir()
    settings = SweepSettings("objective.gamma: {grid: [0.1]}", "x.yaml", overrides=("train.steps=40",),
                             name="s1", trials=None, search="grid")
    (sweep / "sweep.json").write_text(json.dumps(dataclasses.asdict(settings)))
    assert saved_settings("s1", (f"train.storage_path={tmp_path}",)) == dataclasses.replace(
        settings, overrides=("train.steps=40", f"train.storage_path={tmp_path}"))
    with pytest.raises(ConfigError, match="--resume: override 'train.steps=80' would change the sweep"):
        saved_settings("s1", (f"train.storage_path={tmp_path}", "train.steps=80"))
    assert main(["tune", "--resume", "--name", "s1", "--trials", "3", "--scheduler", "fifo",
                 f"train.storage_path={tmp_path}"]) == 2
    assert "--resume continues sweep s1 as it was started: leave out --trials, --scheduler" in capsys.readouterr().err
    for bad, expected in [("[1, 2]", "expected a JSON object"), ('{"name": "s1", "trials": "many"}', "trials must be"),
                          ('{"name": "s1", "space": 3}', "space must be a str"), ("{oops", "unreadable"),
                          ('{"name": "other", "space": "", "space_file": ""}', "not the settings of sweep 's1'")]:
        (sweep / "sweep.json").write_text(bad)
        with pytest.raises(ConfigError, match=expected):
            saved_settings("s1", (f"train.storage_path={tmp_path}",))


def test_resume_never_runs_a_pipe_command_found_in_sweep_storage(tmp_path):
    """Anyone who can write the sweep's storage can edit sweep.json: its pipe: source must not run."""
    from vaegan_tune.sweep import saved_settings

    sweep = tmp_path / "s1"
    sweep.mkdir()
    command = "pipe:touch /tmp/owned && cat shard.tar"
    settings = SweepSettings("objective.gamma: {grid: [0.1]}", "x.yaml", overrides=(f"data.source={command}",),
                             name="s1", search="grid")
    (sweep / "sweep.json").write_text(json.dumps(dataclasses.asdict(settings)))
    storage = f"train.storage_path={tmp_path}"
    with pytest.raises(ConfigError, match=r"sweep.json: holds data.source='pipe:touch /tmp/owned && cat shard.tar', "
                                          "a shell command; a stored command is never run"):
        saved_settings("s1", (storage,))
    with pytest.raises(ConfigError, match="a stored command is never run"):  # typing another one is no consent
        saved_settings("s1", (storage, "data.source=pipe:cat other.tar"))
    resumed = saved_settings("s1", (storage, f"data.source={command}"))  # typed by the user: theirs to run
    assert resumed.overrides == (f"data.source={command}", storage, f"data.source={command}")
    (sweep / "sweep.json").write_text(json.dumps(dataclasses.asdict(dataclasses.replace(settings, overrides=()))))
    with pytest.raises(ConfigError, match="'data.source=/data/celeba' would change the sweep .*'the built-in faces'"):
        saved_settings("s1", (storage, "data.source=/data/celeba"))
    (sweep / "sweep.json").write_text(json.dumps(dataclasses.asdict(dataclasses.replace(
        settings, overrides=(), space='data.source: {choice: ["pipe:touch /tmp/owned"]}'))))
    with pytest.raises(ConfigError, match="its search space holds a pipe: command"):
        saved_settings("s1", (storage,))


def test_the_searcher_holds_the_concurrency_limit():
    """Tune ignores TuneConfig.max_concurrent_trials for a BasicVariantGenerator passed in: the limit must be
    the searcher's own, or trials the cluster cannot place start and wait for workers."""
    from vaegan_tune.sweep import _search_algorithm

    searcher = _search_algorithm(SweepSettings("", "", seed=3), "min", concurrent=2)
    assert type(searcher).__name__ == "BasicVariantGenerator" and searcher.max_concurrent == 2


def test_optuna_samples_inside_the_space_and_learns_from_results():
    pytest.importorskip("optuna")  # in the dev extra: CI always runs this
    from vaegan_tune.sweep import _search_algorithm

    parsed = space("objective.gamma: {loguniform: [1e-7, 1e-1]}\ndata.batch_size: {choice: [16, 32]}")
    searcher = _search_algorithm(SweepSettings("", "", search="optuna", seed=1), "min", concurrent=2)
    assert searcher.set_search_properties("eval/fd", "min", parsed.for_search("optuna"))
    first, second = searcher.suggest("t0"), searcher.suggest("t1")
    assert searcher.suggest("t2") is None  # two at a time
    for trial_id, config in (("t0", first), ("t1", second)):
        assert 1e-7 <= config["objective.gamma"] <= 1e-1 and config["data.batch_size"] in (16, 32)
        searcher.on_trial_complete(trial_id, {"eval/fd": config["objective.gamma"]})
    assert searcher.suggest("t2") is not None


def test_optuna_missing_is_one_line_naming_the_extra(monkeypatch):
    import sys

    from vaegan_tune.sweep import require_optuna

    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    with pytest.raises(ConfigError, match=r"--search optuna needs Optuna: pip install 'vaegan-dist\[optuna\]'"):
        require_optuna()


def test_a_new_sweep_never_takes_a_directory_that_exists(tmp_path):
    from vaegan_tune.sweep import check_new_sweep_dir, sweep_storage

    check_new_sweep_dir(sweep_storage(str(tmp_path), "fresh"))
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--name taken: .*taken exists; continue that sweep with --resume"):
        check_new_sweep_dir(sweep_storage(str(tmp_path), "taken"))
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ConfigError, match="a-file exists"):
        check_new_sweep_dir(sweep_storage(str(tmp_path), "a-file"))
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
