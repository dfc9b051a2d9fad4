"""``vaegan-dist tune``: a sweep of trials over a search space, on whatever Ray cluster this driver reaches.

    resolve the base job once (data, evaluator) -> check the space against it -> fit what the cluster can
    place at once -> a Tuner over run_trial (one TorchTrainer per trial) -> results.csv and the best trial

A sweep lives in ``train.storage_path/<name>``: Tune's own experiment state (what ``--resume`` restores),
``sweep.json`` (the settings a resume must agree with), ``runs/<trial id>`` (each trial's run directory:
checkpoints, TensorBoard, sample grids, config.yaml) and ``results.csv``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from tune.results import summarise
from tune.space import SearchSpace, parse_space, resolve_space_path
from vaegan_dist.config import ConfigError, build_config
from vaegan_dist.evaluate import CHEAP_METRICS, LOWER_IS_BETTER
from vaegan_dist.train.cluster import check_reachable, connect
from vaegan_dist.train.launcher import resolve_run
from vaegan_dist.train.runtime import use_gpu
from vaegan_dist.train.storage import RunStorage

DRIVER_CPU = 0.01  # a trial's own actor only waits on its trainer
SWEEP_FILE = "sweep.json"
SCHEDULERS = ("asha", "fifo")
SEARCHES = ("random", "grid", "optuna")
TRAINING_METRICS = ("loss/l_llike", "loss/l_prior", "loss/l_gan", "loss/l_gen")


@dataclass(frozen=True)
class SweepSettings:
    """Everything that defines a sweep; saved as sweep.json, and a ``--resume`` must not change it (Tune's
    restore keeps the search space, scheduler and searcher it started with)."""

    space: str  # the space file's text
    space_file: str
    preset: str = "smoke"
    overrides: tuple[str, ...] = ()
    trials: int | None = None
    scheduler: str = "asha"
    search: str = "random"
    metric: str = "eval/fd"
    mode: str = ""  # "" = from the metric (min for fd, max for attr_agreement, ...)
    name: str = ""
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def resolved_mode(self) -> str:
        if self.mode:
            return self.mode
        name = self.metric.removeprefix("eval/")
        return "min" if name in LOWER_IS_BETTER or self.metric.startswith("loss/") else "max"


def check_metric(metric: str, has_evaluator: bool, eval_every: int) -> None:
    known = [f"eval/{m}" for m in CHEAP_METRICS] + list(TRAINING_METRICS)
    if metric not in known:
        raise ConfigError(f"--metric {metric!r} is not reported during training; use one of {', '.join(known)}")
    if metric.startswith("eval/") and eval_every <= 0:
        raise ConfigError(f"--metric {metric} needs evaluations during training; got train.eval_every={eval_every}")
    if metric.startswith("eval/") and not has_evaluator:
        raise ConfigError(f"--metric {metric} needs an evaluator for this data (see the warning above), or sweep on "
                          "a training loss such as --metric loss/l_llike")


def placeable_trials(resources: dict[str, float], workers: int, cpus_per_worker: float, gpu: bool) -> int:
    """Trials the cluster can run at once: each needs its driver plus all its workers placed together."""
    per_trial = workers * cpus_per_worker + DRIVER_CPU
    fits = math.floor(resources.get("CPU", 0.0) / per_trial + 1e-9)
    if gpu:
        fits = min(fits, math.floor(resources.get("GPU", 0.0) / workers + 1e-9))
    return fits


def _need(workers: int, cpus: float, gpu: bool, resources: dict[str, float]) -> str:
    has = f"{resources.get('CPU', 0):g} CPU" + (f", {resources.get('GPU', 0):g} GPU" if gpu else "")
    return (f"a trial needs {workers} worker(s) x {cpus:g} CPU{' + 1 GPU' if gpu else ''} and {DRIVER_CPU} CPU for "
            f"its driver; the cluster has {has}")


def sweep_storage(storage_path: str, name: str) -> RunStorage:
    return RunStorage(storage_path, name)


def check_sweep_dir(store: RunStorage, settings: SweepSettings, resume: bool) -> None:
    """A new sweep needs a new directory; ``--resume`` needs a sweep of ours started with these settings."""
    saved_text = store.read_text(SWEEP_FILE)
    exists = store._entries() is not None
    if not resume:
        if exists:
            raise ConfigError(f"--name {store.name}: {store.where()} exists; pass --resume to continue that sweep, "
                              "or choose another --name")
        return
    if saved_text is None:
        raise ConfigError(f"--resume: {store.where()} is not a sweep started by vaegan-dist tune (no {SWEEP_FILE})")
    try:
        saved = json.loads(saved_text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{store.where()}/{SWEEP_FILE}: unreadable ({err})") from None
    now = dataclasses.asdict(settings)
    changed = [f"{k} {saved.get(k)!r} (got {v!r})" for k, v in now.items()
               if k not in ("space_file", "extra") and _plain(saved.get(k)) != _plain(v)]
    if changed:
        raise ConfigError(f"--resume: sweep {store.name} was started with {'; '.join(changed)}; a resumed sweep keeps "
                          "its space, scheduler, search and overrides")


def saved_settings(preset: str, overrides: tuple[str, ...], name: str) -> SweepSettings:
    """The settings sweep ``name`` was started with (``--resume`` without ``--space``); the sweep is looked
    for under the train.storage_path that ``preset`` and ``overrides`` give."""
    storage = build_config(preset, list(overrides)).train.storage_path
    if "://" not in storage:
        storage = str(Path(storage).expanduser().resolve())
    store = sweep_storage(storage, name)
    text = store.read_text(SWEEP_FILE)
    if text is None:
        raise ConfigError(f"--resume: {store.where()} is not a sweep started by vaegan-dist tune (no {SWEEP_FILE})")
    try:
        saved = json.loads(text)
        saved["overrides"] = tuple(saved.get("overrides", ()))
        return SweepSettings(**saved)
    except (json.JSONDecodeError, TypeError) as err:
        raise ConfigError(f"{store.where()}/{SWEEP_FILE}: unreadable ({str(err)[:200]})") from None


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _search_algorithm(settings: SweepSettings, mode: str):
    if settings.search != "optuna":
        return None
    try:
        import optuna  # noqa: F401
        from ray.tune.search.optuna import OptunaSearch
    except ImportError:
        raise ConfigError("--search optuna needs Optuna: pip install 'vaegan-dist[optuna]'") from None
    return OptunaSearch(metric=settings.metric, mode=mode, seed=settings.seed)


def _scheduler(settings: SweepSettings, steps: int, eval_every: int, log_every: int):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if settings.scheduler == "fifo":
        return FIFOScheduler()
    # Rungs at the evaluation steps: each forwarded report carries the newest metric and its step.
    first = eval_every if settings.metric.startswith("eval/") else log_every
    return ASHAScheduler(time_attr="step", max_t=steps, grace_period=max(1, min(first, steps)), reduction_factor=2)


def run_sweep(settings: SweepSettings, resume: bool = False, now: datetime.datetime | None = None) -> str:
    """Run (or resume) the sweep; returns the sweep directory (a URL for remote storage)."""
    from ray import tune

    from tune.trial import TrialPlan, run_trial

    if settings.scheduler not in SCHEDULERS:
        raise ConfigError(f"--scheduler {settings.scheduler!r}: use one of {', '.join(SCHEDULERS)}")
    if settings.search not in SEARCHES:
        raise ConfigError(f"--search {settings.search!r}: use one of {', '.join(SEARCHES)}")
    if settings.mode not in ("", "min", "max"):
        raise ConfigError(f"--mode {settings.mode!r}: use min or max")
    base = build_config(settings.preset, list(settings.overrides))
    low, high = base.train.worker_range()
    if low != high or low < 1:
        raise ConfigError(f"config key 'train.workers' is {base.train.workers!r}; each trial of a sweep runs a fixed "
                          "number (>= 1) of Ray Train workers")
    space: SearchSpace = parse_space(settings.space, settings.space_file, base)
    num_samples, trials = space.trial_count(settings.search, settings.trials)
    param_space = space.for_search(settings.search)
    mode = settings.resolved_mode()
    search_alg = _search_algorithm(settings, mode)
    if not settings.name:
        settings = dataclasses.replace(settings, name=f"sweep-{(now or datetime.datetime.now()).strftime('%Y%m%d-%H%M%S')}")
    # The base job: data opened and checked, evaluator resolved, once for every trial.
    job = resolve_run(dataclasses.replace(base, train=dataclasses.replace(base.train, name=f"{settings.name}-base")))
    check_metric(settings.metric, job.evaluator is not None, base.train.eval_every)
    store = sweep_storage(job.cfg.train.storage_path, settings.name)
    check_sweep_dir(store, settings, resume)

    connect(base.ray.address)
    import ray

    resources = ray.cluster_resources()
    gpu = use_gpu(base.train.device, resources.get("GPU", 0))
    fits = placeable_trials(resources, low, base.train.cpus_per_worker, gpu)
    if fits < 1:
        raise ConfigError(f"{_need(low, base.train.cpus_per_worker, gpu, resources)}: lower train.cpus_per_worker "
                          "(fractions are fine, e.g. 0.49) or train.workers")
    concurrent = min(fits, trials)
    if not store.remote:
        check_reachable(job.cfg)
    if not resume:
        store.mark_ours()
        store.write_text(SWEEP_FILE, json.dumps(dataclasses.asdict(settings), indent=2) + "\n")

    runs_path = f"{store.url}/runs" if store.remote else str(store.local_dir / "runs")
    plan = TrialPlan(job, runs_path, settings.metric, gpu, tuple(d.key for d in space.dimensions))
    trainable = tune.with_resources(tune.with_parameters(run_trial, plan=plan), {"cpu": DRIVER_CPU})
    print(f"sweep {settings.name}: {trials} trial(s) of {low} worker(s) each, {concurrent} at a time, "
          f"{settings.search} search, {settings.scheduler} on {settings.metric} ({mode})\n"
          f"  directory:   {store.where()}\n  TensorBoard: tensorboard --logdir {runs_path}", flush=True)
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # every trial has its own TensorBoard run
    experiment = store.url if store.remote else str(store.local_dir)
    if resume:
        if not tune.Tuner.can_restore(experiment):
            raise ConfigError(f"--resume: {experiment} has no Tune experiment state to restore (the sweep was stopped "
                              "before its first trial started); start it again under another --name")
        tuner = tune.Tuner.restore(experiment, trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(metric=settings.metric, mode=mode, num_samples=num_samples,
                                        scheduler=_scheduler(settings, base.train.steps, base.train.eval_every,
                                                             base.train.log_every),
                                        search_alg=search_alg, max_concurrent_trials=concurrent),
            run_config=tune.RunConfig(name=settings.name, storage_path=job.cfg.train.storage_path, verbose=1,
                                      failure_config=tune.FailureConfig(max_failures=0)),
        )
    grid = tuner.fit()
    summarise(grid, settings, plan, store)
    return store.where()


def load_space_text(path: str) -> tuple[str, str]:
    """(text, resolved file name) of ``--space``."""
    file = resolve_space_path(path)
    try:
        return file.read_text(), str(file)
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{file}: unreadable ({getattr(err, 'strerror', None) or err})") from None

