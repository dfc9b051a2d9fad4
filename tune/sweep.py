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
import re
from dataclasses import dataclass
from pathlib import Path

from vaegan_dist.config import Config, ConfigError, build_config
from vaegan_dist.evaluate import CHEAP_METRICS, better
from vaegan_dist.evaluate.model_metrics import NEEDS_ENCODER
from vaegan_dist.objectives import model_kind
from vaegan_dist.ray_compat import tune_without_tensorboard_logger
from vaegan_dist.train.cluster import check_reachable, connect
from vaegan_dist.train.job import TrainJob
from vaegan_dist.train.launcher import check_sync_batchnorm
from vaegan_dist.train.resolve import resolve_run
from vaegan_dist.train.runtime import use_gpu
from vaegan_dist.train.storage import RunStorage, is_url
from vaegan_tune.pbt import (
    DEFAULT_QUANTILE,
    DEFAULT_RESAMPLE,
    TUNE_CHECKPOINTS_KEPT,
    check_fractions,
    check_pbt_space,
    gated_drivers,
    pbt_cadence,
    pbt_scheduler,
)
from vaegan_tune.results import summarise
from vaegan_tune.space import SearchSpace, parse_space

DRIVER_CPU = 0.01  # a trial's own actor only waits on its trainer
SWEEP_FILE = "sweep.json"
SCHEDULERS = ("asha", "fifo", "pbt")
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
    perturb_every: int = 0  # pbt: steps between perturbations (0: the evaluation interval)
    quantile: float = DEFAULT_QUANTILE  # pbt: the share of trials that copy, and of trials copied
    resample: float = DEFAULT_RESAMPLE  # pbt: the chance a perturbed value is drawn anew from the space

    def resolved_mode(self) -> str:
        if self.mode:
            return self.mode
        name = self.metric.removeprefix("eval/")
        return "min" if self.metric.startswith("loss/") or better(name) == "lower" else "max"


def check_metric(metric: str, kinds: list[str], has_evaluator: bool, eval_every: int) -> None:
    """The metric must be one that every trial's model kind reports during training."""
    known = [f"eval/{m}" for m in CHEAP_METRICS] + list(TRAINING_METRICS)
    if metric not in known:
        raise ConfigError(f"--metric {metric!r} is not reported during training; use one of {', '.join(known)}")
    needs = ("encoder" if metric in ("loss/l_llike", "loss/l_prior") or metric.removeprefix("eval/") in NEEDS_ENCODER
             else "discriminator" if metric in ("loss/l_gan", "loss/l_gen") else None)
    for kind in kinds:
        if needs and needs not in model_kind(kind).networks:
            raise ConfigError(f"--metric {metric}: model.kind={kind} never reports it (it has no {needs})")
    if metric.startswith("eval/") and eval_every <= 0:
        raise ConfigError(f"--metric {metric} needs evaluations during training; got train.eval_every={eval_every}")
    if metric.startswith("eval/") and not has_evaluator:
        raise ConfigError(f"--metric {metric} needs an evaluator for this data (see the warning above), or sweep on "
                          "a training loss such as --metric loss/l_llike")


def placeable_trials(resources: dict[str, float], workers: int, cpus_per_worker: float, gpu: bool,
                     nodes: list[dict[str, float]] | None = None) -> int:
    """Trials the cluster can run at once: each needs its driver plus all its workers placed together, and
    one worker must fit on one node (``nodes``: each alive node's resources; None = not checked)."""
    if nodes is not None and not any(n.get("CPU", 0) + 1e-9 >= cpus_per_worker and (not gpu or n.get("GPU", 0) >= 1)
                                     for n in nodes):
        return 0
    per_trial = workers * cpus_per_worker + DRIVER_CPU
    fits = math.floor(resources.get("CPU", 0.0) / per_trial + 1e-9)
    if gpu:
        fits = min(fits, math.floor(resources.get("GPU", 0.0) / workers + 1e-9))
    return fits


def _need(workers: int, cpus: float, gpu: bool, resources: dict[str, float], nodes: list[dict[str, float]]) -> str:
    has = f"{resources.get('CPU', 0):g} CPU" + (f", {resources.get('GPU', 0):g} GPU" if gpu else "")
    largest = max((n.get("CPU", 0) for n in nodes), default=0)
    return (f"a trial needs {workers} worker(s) x {cpus:g} CPU{' + 1 GPU' if gpu else ''} and {DRIVER_CPU} CPU for "
            f"its driver; the cluster has {has}"
            + (f" (at most {largest:g} CPU on one node)" if len(nodes) > 1 else ""))


RESOURCE_KEYS = ("train.workers", "train.cpus_per_worker")
MIN_FITTED_CPUS = 0.25  # below this a worker would spend its slice waiting: refuse rather than fit


def fit_trial(resources: dict[str, float], nodes: list[dict[str, float]], workers: int, cpus_per_worker: float,
              gpu: bool, given: set[str]) -> tuple[int, float]:
    """A trial's (workers, CPUs per worker) that the cluster can place, changing only what the user did not
    set (``given``: the keys of RESOURCE_KEYS on the command line): the most workers, up to the preset's,
    each with the preset's CPUs or as many as fit (never under MIN_FITTED_CPUS). Unchanged if the trial
    already fits or nothing fits; the caller then refuses with :func:`_need`. Why: the smoke preset's
    2 workers x 1 CPU train on a 2-core machine, but a trial also needs its driver's 0.01 CPU, so a sweep
    with the preset's own settings never fit there."""
    if placeable_trials(resources, workers, cpus_per_worker, gpu, nodes) >= 1:
        return workers, cpus_per_worker
    total = resources.get("CPU", 0.0)
    largest = max((n.get("CPU", 0.0) for n in nodes), default=total)
    candidates = [workers] if "train.workers" in given else range(workers, 0, -1)  # at most the preset's few
    for count in candidates:
        cpus = cpus_per_worker
        if "train.cpus_per_worker" not in given:
            cpus = min(cpus, math.floor(min(largest, (total - DRIVER_CPU) / count) * 100 + 1e-6) / 100)
        if cpus >= min(MIN_FITTED_CPUS, cpus_per_worker) and placeable_trials(resources, count, cpus, gpu, nodes) >= 1:
            return count, cpus
    return workers, cpus_per_worker


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
# Overrides a resumed sweep may change: where to find it and how to reach and wait for the cluster.
OPERATIONAL_KEYS = ("train.storage_path", "ray.address", "train.start_timeout_s", "train.start_retries")


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise ConfigError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (one directory name, at most 128 "
                          "characters, not starting with '.' or '-')")
    return name


def sweep_storage(storage_path: str, name: str) -> RunStorage:
    if not is_url(storage_path):
        storage_path = str(Path(storage_path).expanduser().resolve())
    return RunStorage(storage_path, check_name(name))


def check_new_sweep_dir(store: RunStorage) -> None:
    """A new sweep never writes into a directory that exists (ours or not)."""
    if store.exists():
        raise ConfigError(f"--name {store.name}: {store.where()} exists; continue that sweep with --resume --name "
                          f"{store.name}, or choose another --name")


_FIELD_TYPES = {"space": str, "space_file": str, "preset": str, "scheduler": str, "search": str, "metric": str,
                "mode": str, "name": str, "seed": int, "perturb_every": int, "quantile": float, "resample": float}


def saved_settings(name: str, overrides: tuple[str, ...]) -> SweepSettings:
    """The settings sweep ``name`` was started with, for ``--resume``. ``overrides`` may only be operational
    (OPERATIONAL_KEYS): they are found under train.storage_path and applied after the sweep's own.

    sweep.json may have been written by anyone who can write the sweep's storage (NFS, S3): a ``pipe:``
    data source found there is a shell command, so it runs only if the user types the same
    ``data.source=pipe:...`` on this command line; a stored space holding one is refused."""
    typed_source = _typed_source(overrides)
    other = [o for o in overrides if o.partition("=")[0].strip() not in (*OPERATIONAL_KEYS, "data.source")]
    if other:
        raise ConfigError(f"--resume: override {other[0]!r} would change the sweep; a resumed sweep keeps its config "
                          f"(only {', '.join(OPERATIONAL_KEYS)} may be given)")
    store = sweep_storage(build_config("smoke", list(overrides)).train.storage_path, name)
    text = store.read_text(SWEEP_FILE)
    if text is None:
        raise ConfigError(f"--resume: {store.where()} is not a sweep started by vaegan-dist tune (no {SWEEP_FILE})")
    where = f"{store.where()}/{SWEEP_FILE}"
    try:
        saved = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{where}: unreadable ({err})") from None
    if not isinstance(saved, dict):
        raise ConfigError(f"{where}: expected a JSON object")
    for key, tp in _FIELD_TYPES.items():
        if key in saved and (not isinstance(saved[key], tp) or isinstance(saved[key], bool)):
            raise ConfigError(f"{where}: {key} must be a {tp.__name__}, got {saved[key]!r}"[:300])
    checks = (("seed", lambda v: 0 <= v < 2**32, "in 0..2^32-1"), ("perturb_every", lambda v: v >= 0, ">= 0"),
              ("quantile", lambda v: 0 < v <= 0.5, "in (0, 0.5]"), ("resample", lambda v: 0 <= v <= 1, "in [0, 1]"))
    for key, ok, wanted in checks:
        if key in saved and not ok(saved[key]):
            raise ConfigError(f"{where}: {key} must be {wanted}, got {saved[key]!r}"[:300])
    trials = saved.get("trials")
    if trials is not None and (not isinstance(trials, int) or isinstance(trials, bool) or trials < 1):
        raise ConfigError(f"{where}: trials must be a positive integer or null, got {trials!r}"[:300])
    saved_overrides = saved.get("overrides", [])
    if not isinstance(saved_overrides, list) or not all(isinstance(o, str) for o in saved_overrides):
        raise ConfigError(f"{where}: overrides must be a list of key=value strings")
    unknown = set(saved) - set(_FIELD_TYPES) - {"trials", "overrides", "extra"}
    if unknown or saved.get("name") != name:
        raise ConfigError(f"{where}: not the settings of sweep {name!r} (unexpected {sorted(unknown) or 'name'})"[:300])
    stored_source = _typed_source(tuple(saved_overrides))
    if stored_source.startswith("pipe:") and typed_source != stored_source:
        raise ConfigError(f"{where}: holds data.source={stored_source!r}, a shell command; a stored command is never "
                          "run: repeat data.source=... on this command line to resume with it"[:400])
    if typed_source and typed_source != stored_source:
        raise ConfigError(f"--resume: override 'data.source={typed_source}' would change the sweep (it trained on "
                          f"{stored_source or 'the built-in faces'!r})"[:400])
    if "pipe:" in saved.get("space", ""):
        raise ConfigError(f"{where}: its search space holds a pipe: command; a stored command is never run (start a "
                          "new sweep with the space file)")
    saved["overrides"] = (*saved_overrides, *overrides)
    saved.pop("extra", None)
    return SweepSettings(**saved)


def _typed_source(overrides: tuple[str, ...]) -> str:
    """The last data.source among key=value overrides ("" if none), as the config parser would take it."""
    values = [o.partition("=")[2].strip() for o in overrides if o.partition("=")[0].strip() == "data.source"]
    return values[-1] if values else ""


def require_optuna() -> None:
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError("--search optuna needs Optuna: pip install 'vaegan-dist[optuna]'") from None


def _search_algorithm(settings: SweepSettings, mode: str, concurrent: int):
    """The searcher, holding the sweep's concurrency limit: Tune ignores TuneConfig.max_concurrent_trials
    for a BasicVariantGenerator passed in (it only wraps Searchers), and trials beyond what the cluster can
    place would wait for workers until start_timeout_s x start_retries and fail."""
    if settings.search != "optuna":
        from ray.tune.search import BasicVariantGenerator

        # Seeded: a rerun of the same command draws the same trials.
        return BasicVariantGenerator(random_state=settings.seed, max_concurrent=concurrent)
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    return ConcurrencyLimiter(OptunaSearch(metric=settings.metric, mode=mode, seed=settings.seed),
                              max_concurrent=concurrent)


def _scheduler(settings: SweepSettings, steps: int, eval_every: int, checkpoint_every: int,
               space: SearchSpace | None = None, perturb_every: int = 0):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    if settings.scheduler == "fifo":
        return FIFOScheduler()
    if settings.scheduler == "pbt":
        return pbt_scheduler(space, perturb_every, settings.quantile, settings.resample, settings.seed)
    # Rungs where the metric is reported: a run reports at its evaluation and checkpoint steps (train/loop.py),
    # each report carrying the newest metric and its step; a training loss rides on both.
    reported = (eval_every,) if settings.metric.startswith("eval/") else (eval_every, checkpoint_every)
    first = min((every for every in reported if every > 0), default=steps)
    return ASHAScheduler(time_attr="step", max_t=steps, grace_period=max(1, min(first, steps)), reduction_factor=2)


def run_sweep(settings: SweepSettings, resume: bool = False, now: datetime.datetime | None = None) -> str:
    """Run (or resume) the sweep; returns the sweep directory (a URL for remote storage)."""
    from ray import tune

    from vaegan_tune.trial import TrialPlan, run_trial

    settings, base, space, param_space = _checked_settings(settings, now)
    num_samples, trials = space.trial_count(settings.search, settings.trials)
    # The base job: data opened and checked, evaluator resolved, once for every trial.
    job = resolve_run(dataclasses.replace(base, train=dataclasses.replace(base.train, name=f"{settings.name}-base")))
    kinds = next((list(d.values) for d in space.dimensions if d.key == "model.kind"), [base.model.kind])
    check_metric(settings.metric, kinds, job.evaluator is not None, base.train.eval_every)
    store = sweep_storage(job.cfg.train.storage_path, settings.name)
    if not resume:
        check_new_sweep_dir(store)

    connect(base.ray.address)
    job, placement = _placed_on_cluster(job, settings)
    concurrent = min(placement.fits, trials)
    if not store.remote:
        check_reachable(job.cfg)
    if not resume:  # sweep.json, not a run marker: `vaegan-dist train` must never take this directory for a run
        store.write_text(SWEEP_FILE, json.dumps(dataclasses.asdict(settings), indent=2) + "\n")

    runs_path = f"{store.url}/runs" if store.remote else str(store.local_dir / "runs")
    pbt = settings.scheduler == "pbt"
    plan = TrialPlan(job, runs_path, settings.metric, placement.gpu, tuple(d.key for d in space.dimensions),
                     settings.perturb_every if pbt else 0)
    resources: dict | object = {"cpu": DRIVER_CPU}
    if pbt and trials > concurrent:  # the population exists whole; its drivers' share of the head bounds how many run
        concurrent, bundle = gated_drivers(concurrent)
        resources = tune.PlacementGroupFactory([bundle])
    trainable = tune.with_resources(tune.with_parameters(run_trial, plan=plan), resources)
    at_once = "as many at a time as when it started" if resume else f"{concurrent} at a time"
    print(f"sweep {settings.name}: {trials} trial(s) of {placement.workers} worker(s) each, {at_once}, "
          f"{settings.search} search, {settings.scheduler} on {settings.metric} ({settings.resolved_mode()})"
          + (f", perturbed every {settings.perturb_every} steps" if pbt else "") + "\n"
          f"  directory:   {store.where()}\n  TensorBoard: tensorboard --logdir {runs_path}", flush=True)
    tune_without_tensorboard_logger()
    experiment = store.url if store.remote else str(store.local_dir)
    if resume:
        tuner = _restored_tuner(experiment, trainable)
    else:
        tuner = _new_tuner(settings, trainable, param_space, num_samples, concurrent, job.cfg, space)
    tuner.fit()  # Ctrl-C: Tune saves the sweep and returns; summarise then says how to resume it
    summarise(settings, plan, store)
    return store.where()


def _checked_settings(settings: SweepSettings, now: datetime.datetime | None
                      ) -> tuple[SweepSettings, Config, SearchSpace, dict]:
    """The settings checked and named (``sweep-<time>`` when the user gave no --name), the base config, the parsed
    space and Tune's form of it for the search: everything a user can get wrong, before Ray starts."""
    if settings.scheduler not in SCHEDULERS:
        raise ConfigError(f"--scheduler {settings.scheduler!r}: use one of {', '.join(SCHEDULERS)}")
    if settings.search not in SEARCHES:
        raise ConfigError(f"--search {settings.search!r}: use one of {', '.join(SEARCHES)}")
    if settings.mode not in ("", "min", "max"):
        raise ConfigError(f"--mode {settings.mode!r}: use min or max")
    base = build_config(settings.preset, list(settings.overrides))
    named = [o for o in settings.overrides if o.partition("=")[0].strip() == "train.name"]
    if named:
        raise ConfigError(f"override {named[0]!r}: each trial's run is named after its trial id; name the sweep "
                          "with --name")
    low, high = base.train.worker_range()
    if low != high or low < 1:
        raise ConfigError(f"config key 'train.workers' is {base.train.workers!r}; each trial of a sweep runs a fixed "
                          "number (>= 1) of Ray Train workers")
    space: SearchSpace = parse_space(settings.space, settings.space_file, base)
    settings, base = _checked_schedule(settings, base, space)
    space.trial_count(settings.search, settings.trials)  # refuses a grid with --trials, before Ray starts
    param_space = space.for_search(settings.search)  # refuses a distribution the search cannot take
    if settings.search == "optuna":
        require_optuna()
    if not settings.name:
        settings = dataclasses.replace(settings,
                                       name=f"sweep-{(now or datetime.datetime.now()).strftime('%Y%m%d-%H%M%S')}")
    return settings, base, space, param_space


def _checked_schedule(settings: SweepSettings, base: Config, space: SearchSpace) -> tuple[SweepSettings, Config]:
    """PBT's settings checked, its perturbation interval resolved (what sweep.json keeps) and the trials' checkpoint
    interval set to it; the other schedulers refuse PBT's options."""
    if settings.scheduler != "pbt":
        given = [option for option, value, default in (("--perturb-every", settings.perturb_every, 0),
                                                        ("--quantile", settings.quantile, DEFAULT_QUANTILE),
                                                        ("--resample", settings.resample, DEFAULT_RESAMPLE))
                 if value != default]
        if given:
            raise ConfigError(f"{given[0]} is a setting of --scheduler pbt (got --scheduler {settings.scheduler})")
        return settings, base
    check_fractions(settings.quantile, settings.resample)
    if settings.search == "optuna":
        raise ConfigError("--scheduler pbt draws its population at random (or on a grid) and then explores itself; "
                          "use --search random or grid")
    if is_url(base.train.storage_path):
        raise ConfigError(f"--scheduler pbt: train.storage_path={base.train.storage_path} is a URL; a trial adopts "
                          "its donor's checkpoint in a local or shared (NFS) directory")
    check_pbt_space(space)
    given = {o.partition("=")[0].strip() for o in settings.overrides}
    cadence = pbt_cadence(base, settings.metric, settings.perturb_every, given)
    if cadence.checkpoint_every != base.train.checkpoint_every:
        print(f"sweep: trials checkpoint every {cadence.checkpoint_every} steps (the perturbation interval; "
              f"train.checkpoint_every was {base.train.checkpoint_every})", flush=True)
    base = dataclasses.replace(base, train=dataclasses.replace(base.train, checkpoint_every=cadence.checkpoint_every))
    return dataclasses.replace(settings, perturb_every=cadence.perturb_every), base


@dataclass(frozen=True)
class _Placement:
    workers: int  # per trial
    cpus: float  # per worker
    gpu: bool
    fits: int  # trials the cluster holds at once


def _placed_on_cluster(job: TrainJob, settings: SweepSettings) -> tuple[TrainJob, _Placement]:
    """A trial's workers fitted to the connected cluster (unless the user set them), and how many fit at once;
    a trial that fits nowhere is refused now rather than left pending."""
    import ray

    cfg = job.cfg
    low = cfg.train.worker_range()[0]
    resources = ray.cluster_resources()
    gpu = use_gpu(cfg.train.device, resources.get("GPU", 0))
    check_sync_batchnorm(cfg, gpu, "sweep")
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    given = {o.partition("=")[0].strip() for o in settings.overrides} & set(RESOURCE_KEYS)
    workers, cpus = fit_trial(resources, nodes, low, cfg.train.cpus_per_worker, gpu, given)
    if (workers, cpus) != (low, cfg.train.cpus_per_worker):
        print(f"sweep: a trial fits this cluster ({resources.get('CPU', 0):g} CPU) as {workers} worker(s) x "
              f"{cpus:g} CPU (the preset's {low} x {cfg.train.cpus_per_worker:g} plus the trial's driver do not); "
              f"set {' and '.join(RESOURCE_KEYS)} to choose", flush=True)
        fitted = dataclasses.replace(cfg.train, workers=str(workers), cpus_per_worker=cpus)  # "N" or "N-M"
        job = dataclasses.replace(job, cfg=dataclasses.replace(cfg, train=fitted))
    fits = placeable_trials(resources, workers, cpus, gpu, nodes)
    if fits < 1:
        raise ConfigError(f"{_need(workers, cpus, gpu, resources, nodes)}: lower "
                          "train.cpus_per_worker (fractions are fine, e.g. 0.49) or train.workers")
    return job, _Placement(workers, cpus, gpu, fits)


def _restored_tuner(experiment: str, trainable):
    from ray import tune

    if not tune.Tuner.can_restore(experiment):
        raise ConfigError(f"--resume: {experiment} has no Tune experiment state to restore (the sweep was stopped "
                          "before its first trial started); start it again under another --name")
    return tune.Tuner.restore(experiment, trainable, resume_unfinished=True, resume_errored=True)


def _new_tuner(settings: SweepSettings, trainable, param_space: dict, num_samples: int, concurrent: int,
               cfg: Config, space: SearchSpace):
    """``cfg``: the trials' base config as the sweep resolved it (for PBT, checkpointing at the perturbation
    steps)."""
    from ray import tune
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    mode, pbt, train = settings.resolved_mode(), settings.scheduler == "pbt", cfg.train
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune.TuneConfig(metric=settings.metric, mode=mode, num_samples=num_samples, reuse_actors=False,
                                    scheduler=_scheduler(settings, train.steps, train.eval_every,
                                                         train.checkpoint_every, space, settings.perturb_every),
                                    search_alg=_search_algorithm(settings, mode, 0 if pbt else concurrent)),
        run_config=tune.RunConfig(name=settings.name, storage_path=train.storage_path, verbose=1,
                                  failure_config=tune.FailureConfig(max_failures=0),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=TUNE_CHECKPOINTS_KEPT if pbt
                                                                          else None),
                                  callbacks=[JsonLoggerCallback(), CSVLoggerCallback()]),
    )
