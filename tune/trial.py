"""One trial of a sweep (Ray 2.60's Train-in-Tune pattern, Train V2): the sweep's base job with the trial's
hyperparameters, in a run directory named after the trial id, trained by its own ``TorchTrainer`` whose
reports reach Tune through a report callback.

Naming the run after the trial id (never a timestamp) is what makes a restarted trial resume its own
checkpoint and never another's: Train V2 finds the checkpoints of ``storage_path/name`` by itself.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any

from ray.tune.integration.ray_train import TuneReportCallback

from vaegan_dist.config import Config, set_key, validate
from vaegan_dist.ray_compat import set_worker_start_timeout
from vaegan_dist.train.job import TrainJob
from vaegan_dist.train.launcher import build_trainer, run_trainer
from vaegan_dist.train.resume import check_run_dir, record_run
from vaegan_dist.train.storage import RunStorage

TRIAL_STARTED = "perf/trial_started_unix"  # reported with every result: overhead = first step - this


def trial_config(base: Config, params: dict[str, Any]) -> Config:
    """``base`` with a trial's sampled values (already checked by the space, checked again here)."""
    cfg = copy.deepcopy(base)
    for key, value in params.items():
        set_key(cfg, key, value)
    return validate(cfg)


def trial_overrides(params: dict[str, Any]) -> list[str]:
    """The trial's values as ``key=value`` arguments that ``vaegan-dist train`` reads back exactly."""
    return [f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items()]


class MetricReportCallback(TuneReportCallback):
    """Forward rank 0's reports to Tune once they hold the sweep's metric (Tune refuses results without it,
    and a scheduler has nothing to compare before the first evaluation), with the trial's start time."""

    def __init__(self, metric: str, started_unix: float):
        super().__init__()
        self.metric, self.started_unix = metric, started_unix

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        if metrics and self.metric in metrics[0]:
            super().after_report(run_context, [{**metrics[0], TRIAL_STARTED: self.started_unix}], checkpoint)


@dataclasses.dataclass(frozen=True)
class TrialPlan:
    """What every trial of a sweep shares, shipped to the trial actors once through Ray's object store."""

    base: TrainJob  # the resolved base job: data opened, evaluator state, config with the overrides
    runs_path: str  # trials' runs live in runs_path/<trial id>
    metric: str
    gpu: bool
    hparam_keys: tuple[str, ...]


def run_trial(params: dict[str, Any], plan: TrialPlan) -> None:
    """Tune's trainable (a function of the sampled params): train the trial's run to the end, or until Tune
    stops it."""
    from ray import tune

    started = time.time()
    trial_id = tune.get_context().get_trial_id()
    job = dataclasses.replace(plan.base, cfg=trial_config(plan.base.cfg, params), hparam_keys=plan.hparam_keys)
    job = job.with_run(RunStorage(plan.runs_path, trial_id))
    check_run_dir(job)
    record_run(job)
    print(f"trial {trial_id}: {' '.join(trial_overrides(params))} -> {job.run.where()}", flush=True)
    set_worker_start_timeout(job.cfg.train.start_timeout_s)
    run_trainer(lambda: build_trainer(job, plan.gpu, {"callbacks": [MetricReportCallback(plan.metric, started)]}),
                job.cfg.train.max_failures)
