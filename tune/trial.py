"""One trial of a sweep (Ray 2.60's Train-in-Tune pattern, Train V2): the sweep's base job with the trial's
hyperparameters, in a run directory named after the trial id, trained by its own ``TorchTrainer`` whose
reports reach Tune through a report callback.

Naming the run after the trial id (never a timestamp) is what makes a restarted trial resume its own
checkpoint and never another's: Train V2 finds the checkpoints of ``storage_path/name`` by itself.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from ray.train.v2.api.callback import UserCallback

from vaegan_dist.atomic import atomic_write_text
from vaegan_dist.config import Config, set_key, validate
from vaegan_dist.model.store import checkpoint_step, find_checkpoints
from vaegan_dist.ray_compat import configure_train_controller
from vaegan_dist.train.job import TrainJob
from vaegan_dist.train.launcher import build_trainer, run_trainer
from vaegan_dist.train.loop import OWNER_FILE
from vaegan_dist.train.resume import check_run_dir, record_run
from vaegan_dist.train.storage import RunStorage
from vaegan_tune.adopt import adopt_checkpoint, saved_run
from vaegan_tune.schedule import Segment, record_segment

TRIAL_STARTED = "perf/trial_started_unix"  # reported with every result: overhead = first step - this
CHECKPOINT_PATH = "checkpoint_path"  # the run's checkpoint of a result that has one (Ray's TuneReportCallback's key)


def trial_config(base: Config, params: dict[str, Any]) -> Config:
    """``base`` with a trial's sampled values (already checked by the space, checked again here)."""
    cfg = copy.deepcopy(base)
    for key, value in params.items():
        set_key(cfg, key, value)
    return validate(cfg)


def trial_overrides(params: dict[str, Any]) -> list[str]:
    """The trial's values as ``key=value`` arguments that ``vaegan-dist train`` reads back exactly."""
    return [f"{key}={value!r}" if isinstance(value, float) else f"{key}={value}" for key, value in params.items()]


class TrialReports(UserCallback):
    """Runs in the trial's Train controller: hands rank 0's reports to the trial's driver through a queue, once they
    hold the sweep's metric (Tune refuses results without it, and a scheduler has nothing to compare before the
    first evaluation), with the trial's start time and the checkpoint's path. Ray's ``TuneReportCallback`` does the
    same but drops the checkpoint; a PBT trial's driver reports the checkpoint to Tune, and only the reports of the
    perturbation steps (and the last) reach it: PBT copies the donor's last reported checkpoint, which must be the
    one of the step it was ranked on."""

    def __init__(self, queue, metric: str, started_unix: float, perturb_every: int = 0, steps: int = 0):
        """``perturb_every`` > 0 (PBT): forward only the reports of the perturbation steps and the last one
        (``steps``), with their checkpoints; PBT refreshes a donor's checkpoint only at its perturbation steps, and
        one reported between them would push it out of Tune's last few before it is copied."""
        self.queue, self.metric, self.started_unix = queue, metric, started_unix
        self.perturb_every, self.steps = perturb_every, steps

    def after_report(self, run_context, metrics: list[dict[str, Any]], checkpoint) -> None:
        if not metrics or self.metric not in metrics[0]:
            return
        step = int(metrics[0].get("step", 0))
        if self.perturb_every and (checkpoint is None or (step % self.perturb_every and step != self.steps)):
            return
        extra = {TRIAL_STARTED: self.started_unix, **({CHECKPOINT_PATH: checkpoint.path} if checkpoint else {})}
        self.queue.put({**metrics[0], **extra})  # blocks while the driver has not taken the previous one


def _forward_reports(queue, training: threading.Thread, with_checkpoints: bool) -> None:
    """The driver's side (the Tune function's own thread, where ``tune.report`` belongs): every report the
    controller queued, until training ends, then what is left."""
    from ray import tune
    from ray.util.queue import Empty

    def forward(metrics: dict[str, Any]) -> None:
        path = metrics.get(CHECKPOINT_PATH) if with_checkpoints else None
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(path) if path else None)

    while training.is_alive():
        try:
            forward(queue.get(timeout=1.0))
        except Empty:
            continue
    while True:
        try:
            forward(queue.get_nowait())
        except Empty:
            return


@dataclasses.dataclass(frozen=True)
class TrialPlan:
    """What every trial of a sweep shares, shipped to the trial actors once through Ray's object store."""

    base: TrainJob  # the resolved base job: data opened, evaluator state, config with the overrides
    runs_path: str  # trials' runs live in runs_path/<trial id>
    metric: str
    gpu: bool
    hparam_keys: tuple[str, ...]
    perturb_every: int = 0  # PBT: checkpoints of these steps go to Tune, and a trial may start from another's

    @property
    def pbt(self) -> bool:
        return self.perturb_every > 0


def _start(job: TrainJob, params: dict[str, Any], trial_id: str, pbt: bool) -> tuple[TrainJob, int]:
    """The run directory ready for this start of the trial: ours, holding the checkpoint Tune chose (PBT), owned by
    this start, checked against the resume policy, with the segment it starts recorded; returns the job (with its
    start token, for PBT) and the step it resumes from."""
    from ray import tune

    job.run.check_ours()
    adopted = None
    if pbt:
        job = dataclasses.replace(job, start_token=uuid.uuid4().hex)
        job.run.mark_ours()  # checked above; marked before anything else is written into it
        # First: a run of an earlier start that Tune stopped and that is still finishing a step writes no more.
        atomic_write_text(job.run.local_dir / OWNER_FILE, job.start_token + "\n")
        given = tune.get_checkpoint()
        if given is not None:
            with given.as_directory() as directory:
                adopted = adopt_checkpoint(job.run.local_dir, trial_id, Path(directory))
            if adopted is not None and adopted.run != trial_id:
                print(f"trial {trial_id}: continues from trial {adopted.run}'s checkpoint of step {adopted.step}",
                      flush=True)
    check_run_dir(job)
    record_run(job)
    own = [] if job.run.remote else find_checkpoints(job.run.local_dir)
    if pbt:
        source = adopted or (saved_run(own[-1]) if own else None)
        record_segment(job.run.local_dir, Segment(
            source.step if source else 0, dict(params), job.start_token,
            copied_from=source.run if source and source.run != trial_id else None,
            from_token=source.token if source else None))
    return job, (adopted.step if adopted else (checkpoint_step(own[-1]) if own else 0))


def run_trial(params: dict[str, Any], plan: TrialPlan) -> None:
    """Tune's trainable (a function of the sampled params): train the trial's run to the end, or until Tune
    stops or pauses it."""
    from ray import tune
    from ray.util.queue import Queue

    started = time.time()
    trial_id = tune.get_context().get_trial_id()
    job = dataclasses.replace(plan.base, cfg=trial_config(plan.base.cfg, params), hparam_keys=plan.hparam_keys)
    job = job.with_run(RunStorage(plan.runs_path, trial_id))
    job, step = _start(job, params, trial_id, plan.pbt)
    print(f"trial {trial_id}: {' '.join(trial_overrides(params))} -> {job.run.where()}", flush=True)
    if step >= job.cfg.train.steps:  # PBT paused it at its last step: starting Train only to stop costs ~10 s
        print(f"trial {trial_id}: its run is at step {step} of {job.cfg.train.steps}; nothing to do", flush=True)
        return
    configure_train_controller(job.cfg.train.start_timeout_s)
    queue = Queue(maxsize=1, actor_options={"num_cpus": 0})
    reports = TrialReports(queue, plan.metric, started, plan.perturb_every, job.cfg.train.steps)
    failure: list[BaseException] = []

    def train() -> None:
        try:
            run_trainer(lambda: build_trainer(job, plan.gpu, {"callbacks": [reports]}), job.cfg.train.max_failures)
        except BaseException as err:  # noqa: BLE001 - raised again in the trial's own thread, below
            failure.append(err)

    training = threading.Thread(target=train, name=f"train-{trial_id}", daemon=True)
    training.start()
    _forward_reports(queue, training, plan.perturb_every > 0)
    training.join()
    queue.shutdown()  # its actor; one Tune stops with the trial goes with the trial's own actor
    if failure:
        raise failure[0]
