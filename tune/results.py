"""A sweep's outcome: ``results.csv`` (every trial, best first) and the best trial named with the command that
continues it. Read from Tune's saved experiment state, so a sweep that was resumed, or whose trials were
stopped early, is summarised the same way.

A trial's step and metrics are its run's own last evaluation where the run directory is local: when ASHA
stops a trial, Tune keeps the last result it accepted, but the trial's workers may finish the step they are
in and evaluate once more before they stop, so Tune's last result can be an evaluation older than the run's
(and its checkpoint's). Runs in remote storage keep Tune's last result."""

from __future__ import annotations

import csv
import io
import logging
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vaegan_dist.errors import TrainingError
from vaegan_dist.model.store import find_checkpoints
from vaegan_dist.train.storage import RunStorage
from vaegan_tune.schedule import SCHEDULES_CSV, lineage, replay_commands, schedules_csv

RESULTS_FILE = "results.csv"


@dataclass(frozen=True)
class TrialRow:
    trial_id: str
    status: str  # completed | stopped early | error | unfinished
    params: dict[str, Any]
    metrics: dict[str, float]  # the run's last evaluation: eval/*, and loss/* at its step
    step: int
    run_dir: str
    checkpoint: str
    error: str


def trial_status(tune_status: str, step: int, steps: int) -> str:
    if tune_status == "ERROR":
        return "error"
    if tune_status == "TERMINATED":
        return "completed" if step >= steps else "stopped early"
    return "unfinished"


def _newest_checkpoint(run_dir: str, reported: str) -> str:
    if "://" not in run_dir:
        found = find_checkpoints(Path(run_dir))
        return str(found[-1]) if found else ""
    return reported or ""


def last_evaluation(run_dir: str) -> tuple[int, dict[str, float]] | None:
    """The step and the ``eval/*`` and ``loss/*`` values of a local run's last evaluation, read from its
    TensorBoard events (the newest ``eval/`` event by time, so that a resumed run's stale events beyond its
    checkpoint do not count); None for a remote run or one that has not evaluated."""
    board = Path(run_dir) / "tensorboard"
    if "://" in run_dir or not board.is_dir():
        return None
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    quiet = logging.getLogger("tensorboard")  # a resumed run's purged events are expected, not news
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        events = EventAccumulator(str(board), size_guidance={"scalars": 0, "images": 1, "tensors": 1,
                                                             "histograms": 1}).Reload()
    finally:
        quiet.setLevel(level)
    scalars = {tag: events.Scalars(tag) for tag in events.Tags()["scalars"] if tag.startswith(("eval/", "loss/"))}
    evaluations = [e for tag, found in scalars.items() if tag.startswith("eval/") for e in found]
    if not evaluations:
        return None
    step = max(evaluations, key=lambda e: e.wall_time).step
    metrics = {}
    for tag, found in scalars.items():
        at_step = [e for e in found if e.step == step]
        if at_step:
            metrics[tag] = float(max(at_step, key=lambda e: e.wall_time).value)
    return step, metrics


def collect_rows(trials, runs_path: str, steps: int) -> list[TrialRow]:
    rows = []
    for trial in trials:
        last = dict(trial.last_result or {})
        step = int(last.get("step", 0) or 0)
        run_dir = f"{runs_path}/{trial.trial_id}"
        error = ""
        if trial.status == "ERROR":
            lines = str(trial.get_error() or "").strip().splitlines()
            error = (lines[-1] if lines else "see the trial's log")[:300]
        metrics = {k: float(v) for k, v in last.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool) and k.startswith(("eval/", "loss/"))}
        own = last_evaluation(run_dir)
        if own is not None and own[0] > step:  # the run went on after Tune's last result
            step, metrics = own
        rows.append(TrialRow(trial.trial_id, trial_status(trial.status, step, steps), dict(trial.config), metrics, step,
                             run_dir, _newest_checkpoint(run_dir, str(last.get("checkpoint_path", ""))), error))
    return rows


def sort_rows(rows: list[TrialRow], metric: str, mode: str) -> list[TrialRow]:
    """Best first: the trials that got furthest, then by ``metric``; trials without a finite value last. A
    metric is compared only between trials at the same step: an ASHA trial stopped at its first evaluation is not
    better than one trained to the end because its early fd was lower (a GAN's fd may rise for a while). Among
    trials at the same step (every trial of a fifo or PBT sweep) the metric alone decides."""

    def key(row: TrialRow) -> tuple[int, int, float]:
        value = row.metrics.get(metric, math.nan)
        if not math.isfinite(value):
            return (1, 0, 0.0)
        return (0, -row.step, value if mode == "min" else -value)

    return sorted(rows, key=key)


def results_csv(rows: list[TrialRow], metric: str) -> str:
    params = sorted({k for row in rows for k in row.params})
    measured = sorted({k for row in rows for k in row.metrics} - {metric})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["rank", "trial_id", "status", metric, "step", *params, *measured, "run_dir", "checkpoint",
                     "error"])
    for rank, row in enumerate(rows, 1):
        writer.writerow([rank, row.trial_id, row.status, row.metrics.get(metric, ""), row.step,
                         *(row.params.get(k, "") for k in params), *(row.metrics.get(k, "") for k in measured),
                         row.run_dir, row.checkpoint, row.error])
    return out.getvalue()


def continue_command(preset: str, overrides: list[str], params: dict[str, Any], runs_path: str, trial_id: str,
                     steps: int) -> str:
    from vaegan_tune.trial import trial_overrides

    args = ["vaegan-dist", "train", "--preset", preset, *overrides, *trial_overrides(params),
            f"train.storage_path={runs_path}", f"train.name={trial_id}", f"train.steps={steps}"]
    return " ".join(shlex.quote(a) for a in args)


def resume_command(settings, store: RunStorage) -> str:
    storage = [o for o in settings.overrides if o.partition("=")[0].strip() == "train.storage_path"][-1:]
    return " ".join(shlex.quote(a) for a in ["vaegan-dist", "tune", "--resume", "--name", store.name, *storage])


def summarise(settings, plan, store: RunStorage) -> list[TrialRow]:
    """Write results.csv into the sweep directory, print the table's head and the best trial. Read from the
    saved experiment state, which holds every trial, including those of earlier sessions of a resumed sweep.
    A sweep with unfinished trials (interrupted) ends with an error that says how to resume it."""
    from ray.tune import ExperimentAnalysis

    analysis = ExperimentAnalysis(store.url if store.remote else str(store.local_dir))
    steps = plan.base.cfg.train.steps
    mode = settings.resolved_mode()
    rows = sort_rows(collect_rows(analysis.trials, plan.runs_path, steps), settings.metric, mode)
    store.write_text(RESULTS_FILE, results_csv(rows, settings.metric))
    print(f"\n{len(rows)} trial(s): " + ", ".join(f"{sum(r.status == s for r in rows)} {s}" for s in
                                                 ("completed", "stopped early", "error", "unfinished")
                                                 if any(r.status == s for r in rows)))
    for row in rows[:10]:
        value = row.metrics.get(settings.metric)
        shown = f"{value:.4g}" if value is not None else "-"
        params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.params.items())
        print(f"  {row.trial_id}  {settings.metric} {shown:>9}  step {row.step:>7}  {row.status:<13} {params}")
    print(f"results: {store.where()}/{RESULTS_FILE}")
    unfinished = sum(r.status == "unfinished" for r in rows)
    if unfinished:
        raise TrainingError(f"sweep {store.name} stopped with {unfinished} unfinished trial(s); continue it with: "
                            f"{resume_command(settings, store)}")
    best = rows[0] if rows and settings.metric in rows[0].metrics else None
    if best is None:
        raise TrainingError(f"no trial of sweep {store.name} reported {settings.metric}: see the status and error "
                            f"columns of {store.where()}/{RESULTS_FILE}")
    print(f"best trial: {best.trial_id} ({settings.metric} {best.metrics[settings.metric]:.4g}, {best.status} at step "
          f"{best.step})\n  checkpoint: {best.checkpoint or '(none yet)'}\n  continue it: "
          + continue_command(settings.preset, list(settings.overrides), best.params, plan.runs_path, best.trial_id,
                             steps if best.step < steps else 2 * steps))
    if plan.pbt:
        print_schedule(settings, plan, store, rows, best)
    return rows


def print_schedule(settings, plan, store: RunStorage, rows: list[TrialRow], best: TrialRow) -> None:
    """A PBT sweep: every trial's schedule into schedule.csv, and the commands that rerun the best trial's from
    scratch (its lineage through the trials it copied), or why they cannot be given."""
    runs = Path(plan.runs_path)
    store.write_text(SCHEDULES_CSV, schedules_csv(runs, [r.trial_id for r in rows]))
    print(f"schedules: {store.where()}/{SCHEDULES_CSV}")
    optim = plan.base.cfg.optim
    if optim.schedule != "constant" or "optim.schedule" in best.params:
        print(f"  its schedule cannot be replayed with train commands: optim.schedule={optim.schedule} sets the "
              "learning rates from train.steps, which each command of a replay would change")
        return
    try:
        chain = lineage(runs, best.trial_id)
    except TrainingError as err:
        print(f"  its schedule cannot be replayed: {err}")
        return
    train = plan.base.cfg.train
    fixed = [f"train.workers={train.workers}", f"train.cpus_per_worker={train.cpus_per_worker:g}",
             f"train.eval_every={train.eval_every}", f"train.checkpoint_every={train.checkpoint_every}"]
    # Each key once: the sweep's overrides less those the commands set themselves.
    replaced = {a.partition("=")[0] for a in fixed} | {"train.steps", "train.name"} | set(best.params)
    kept = [o for o in settings.overrides if o.partition("=")[0].strip() not in replaced]
    args = ["--preset", settings.preset, *kept, *fixed]
    trials = " -> ".join(dict.fromkeys(trial for trial, _ in chain))
    print(f"  its schedule ({len(chain)} segment(s), through {trials}); replay it from scratch, one command after "
          "the other:")
    for command in replay_commands(chain, best.step, args, f"{store.name}-replay-{best.trial_id}"):
        print(f"    {command}")
