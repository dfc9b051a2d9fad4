"""The driver side of ``vaegan-dist train``: resolve the run once, check it, build the trainer, run it.

Everything a worker needs is resolved here first (absolute paths, the run name, the data source opened
and checked, the built-in data set rendered once) and handed down as a :class:`TrainJob`, so that bad
input fails in seconds on the driver instead of inside N workers. Building the ``TorchTrainer`` is kept
apart from running it, so a Tune trial can build one for its own run directory.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Callable
from pathlib import Path

import yaml

from vaegan_dist.config import Config, ConfigError, config_from_dict, config_to_dict, config_to_flat_dict
from vaegan_dist.data.sources import canonical, open_sources
from vaegan_dist.data.stream import check_image_size
from vaegan_dist.data.synthetic import ensure_synthetic, is_built_in
from vaegan_dist.errors import DataError, TrainingError
from vaegan_dist.evaluate.train_evaluator import no_evaluator_hint, resolve_evaluator
from vaegan_dist.model.store import find_checkpoints, load_state
from vaegan_dist.train.cluster import check_reachable, connect
from vaegan_dist.train.errors import user_error_from
from vaegan_dist.train.job import TrainJob
from vaegan_dist.train.loop import train_loop
from vaegan_dist.train.runtime import collective_backend, use_gpu
from vaegan_dist.train.session import LocalSession
from vaegan_dist.train.storage import RunStorage, is_url

# A resumed run cannot change these: the checkpoint's tensors have their shapes.
# optim.algorithm: RMSProp's state cannot continue as Adam's (or the other way round).
_ARCHITECTURE_KEYS = ("model.kind", "data.image_size", "model.latent_dim", "model.encoder_fc",
                      "model.discriminator_fc", "model.width", "model.condition", "model.spectral_norm",
                      "model.discriminator_norm",
                      "optim.algorithm")


def resolve_run(cfg: Config, now: datetime.datetime | None = None) -> TrainJob:
    """The job for ``cfg`` (already validated): absolute paths, a run name, the data opened and checked."""
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data), train=dataclasses.replace(cfg.train))
    if not is_url(cfg.train.storage_path):
        cfg.train.storage_path = str(Path(cfg.train.storage_path).expanduser().resolve())
    elif cfg.train.workers == "0":
        raise ConfigError(f"config key 'train.storage_path' is a URL ({cfg.train.storage_path}); train.workers=0 "
                          "(no Ray) writes checkpoints to local or NFS paths only")
    if not cfg.train.name:
        cfg.train.name = f"{cfg.preset}-{(now or datetime.datetime.now()).strftime('%Y%m%d-%H%M%S')}"
    built_in = not cfg.data.source or is_built_in(cfg.data.source, cfg.data.cache_dir)
    if cfg.data.source:
        cfg.data.source = canonical(cfg.data.source)
    else:
        cfg.data.source = str(ensure_synthetic(Path(cfg.data.cache_dir), cfg.data.synthetic_samples,
                                               cfg.data.image_size))
    sources = open_sources(cfg.data.source, cfg.data.split, optional=("valid",))  # one manifest read
    check_image_size(sources[cfg.data.split], cfg.data.image_size)
    if cfg.model.condition == "attributes" and not sources[cfg.data.split].attributes:
        raise ConfigError(f"config key 'model.condition': 'attributes' needs data with attributes, and "
                          f"{sources[cfg.data.split].where} has none (prepare folder takes them with --attributes)")
    grid_split = "valid" if "valid" in sources else cfg.data.split  # grids show images the model never trains on
    evaluator = None
    if cfg.train.eval_every > 0:
        try:
            found = resolve_evaluator(sources[cfg.data.split], cfg.data.cache_dir, cfg.train.evaluator,
                                      built_in=built_in)
        except (FileNotFoundError, IsADirectoryError) as err:
            raise ConfigError(f"config key 'train.evaluator': {err}") from None
        if found is None:
            print(f"warning: {no_evaluator_hint(sources[cfg.data.split])}; until then eval/* metrics are off")
        elif 0 < sources[grid_split].samples <= 3:
            raise DataError(f"{sources[grid_split].where}: split {grid_split!r} has {sources[grid_split].samples} "
                            "images; evaluation needs more than 3 (or set train.eval_every=0)")
        else:
            evaluator = found.state()
    return TrainJob(cfg, RunStorage(cfg.train.storage_path, cfg.train.name), sources[cfg.data.split],
                    sources[grid_split], grid_split, evaluator)


def check_run_dir(job: TrainJob) -> None:
    """Everything that can refuse a run directory, before anything is written to it: the directory must be
    ours, and a rerun may not change the architecture (the checkpoint's tensors could not be loaded).
    Says which other keys changed."""
    job.run.check_ours()
    new = config_to_flat_dict(job.cfg)
    saved = {}
    for relative, text in job.run.saved_configs():  # the newest checkpoint's, then the run's
        try:
            saved[relative] = config_to_flat_dict(config_from_dict(yaml.safe_load(text), source=relative))
        except (ConfigError, yaml.YAMLError) as err:
            raise ConfigError(f"{job.run.where()}/{relative}: unreadable ({str(err).splitlines()[0]}); "
                              "restore it or choose another train.name") from None
    if not saved:
        return
    weights = next(iter(saved.values()))  # what the newest checkpoint's tensors were built with
    fixed = [f"{k}={weights[k]!r} (got {new[k]!r})" for k in _ARCHITECTURE_KEYS if weights.get(k) != new.get(k)]
    if fixed:
        raise ConfigError(f"run {job.run.name} was started with {', '.join(fixed)}; a resumed run cannot "
                          "change the architecture or the optimiser: keep those values or choose another train.name")
    _check_same_attributes(job)
    old = saved.get("config.yaml", weights)
    changed = [f"{k}: {old[k]!r} -> {v!r}" for k, v in new.items() if k in old and old[k] != v]
    print(f"resuming run {job.run.name}" + (f"; changed: {', '.join(changed)}" if changed else ""))


def _check_same_attributes(job: TrainJob) -> None:
    """A conditioned model's y columns mean the attributes it was trained with, in that order: resuming on data
    that lists other attributes (or the same in another order) would load and silently mean other things.
    Checked here, before the run's config.yaml is rewritten (the loop checks again, for remote runs)."""
    if job.cfg.model.condition != "attributes" or job.run.remote:
        return
    newest = find_checkpoints(job.run.local_dir)
    if not newest:
        return
    saved = list(load_state(newest[-1], mmap=True).get("attributes", []))  # the tensors stay on disk
    if saved != list(job.data.attributes):
        raise ConfigError(f"{newest[-1]}: the checkpoint is conditioned on attributes {saved}, but "
                          f"{job.data.where} has {list(job.data.attributes)}; resume with the data it was trained on")


def record_run(job: TrainJob) -> None:
    """Mark the run directory as ours and save the resolved config (after every check has passed)."""
    try:
        job.run.mark_ours()
        job.run.write_text("config.yaml", yaml.safe_dump(config_to_dict(job.cfg), sort_keys=False))
    except OSError as err:
        raise TrainingError(f"{job.run.where()}: the run's config could not be written "
                            f"({err.strerror or err})") from None


def ray_train_loop(config: dict) -> None:
    """Ray Train's entry point (a one-argument function): the job travels in ``config["job"]``."""
    train_loop(config["job"])


def build_trainer(job: TrainJob, gpu: bool, run_config_overrides: dict | None = None):
    """The ``TorchTrainer`` for ``job``; Ray must be connected. ``run_config_overrides`` are extra
    ``RunConfig`` arguments (a Tune trial adds its report callback)."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    cfg = job.cfg
    low, high = cfg.train.worker_range()
    return TorchTrainer(
        ray_train_loop,
        train_loop_config={"job": job},
        scaling_config=ScalingConfig(num_workers=low if low == high else (low, high), use_gpu=gpu,
                                     resources_per_worker={"CPU": cfg.train.cpus_per_worker,
                                                           **({"GPU": 1} if gpu else {})}),
        torch_config=TorchConfig(backend=collective_backend(gpu), timeout_s=cfg.train.collective_timeout_s),
        run_config=RunConfig(
            name=job.run.name,
            storage_path=job.run.storage_path,
            # Restarts after a worker dies are run_trainer's (Ray would also retry errors that are the user's
            # to fix, forever with -1); controller_failure_limit bounds the attempts to start the worker
            # group, which Ray otherwise retries forever.
            failure_config=FailureConfig(max_failures=0, controller_failure_limit=cfg.train.start_retries),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.keep_checkpoints),
            logging_config=LoggingConfig(log_level="WARNING"),  # Ray's per-report INFO lines drown the progress
            # Ray 2.60 patches print() in workers to both print and log each line: progress would show twice.
            worker_runtime_env={"env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}},
            **(run_config_overrides or {}),
        ),
    )


def run_trainer(build: Callable[[], object], max_failures: int) -> None:
    """Fit the trainer ``build()`` makes. After a worker failure (a lost node, a killed process) fit a new
    one, which resumes from the newest checkpoint, up to ``max_failures`` times (-1: no limit). A data,
    config, checkpoint or training error is the user's to fix: raised at once as its own one line (not
    Ray's remote traceback), never retried."""
    from ray.train import TrainingFailedError, WorkerGroupError

    restarts = 0
    while True:
        try:
            build().fit()
            return
        except TrainingFailedError as err:
            user_error = user_error_from(err)
            if user_error is not None:
                raise user_error from None
            if not isinstance(err, WorkerGroupError) or (max_failures != -1 and restarts >= max_failures):
                raise
            restarts += 1
            reason = next(iter(str(err).splitlines()[1:2]), type(err).__name__)
            print(f"a worker failed ({reason[:200]}); restart {restarts}"
                  f"{'' if max_failures == -1 else f' of {max_failures}'} from the newest checkpoint", flush=True)


def check_sync_batchnorm(cfg: Config, gpu: bool, what: str = "job") -> None:
    """PyTorch's SyncBatchNorm has no CPU implementation: refuse before any worker starts."""
    if cfg.model.sync_batchnorm and not gpu:
        raise ConfigError("config key 'model.sync_batchnorm' needs GPU workers: PyTorch's SyncBatchNorm has no CPU "
                          f"implementation; got true on a CPU-only {what}")


def set_worker_start_timeout(seconds: float) -> None:
    """How long one attempt to start the worker group waits. Ray 2.60's Train V2 reads it only from the
    environment of its controller, which inherits this process's: it has no public setting (ScalingConfig and
    RunConfig carry none), so this is the one place that sets the variable."""
    os.environ["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] = str(seconds)


def _ray_gpu(job: TrainJob) -> bool:
    """Connect, decide GPU or CPU workers, and check what Ray itself would notice only later."""
    import ray

    cfg = job.cfg
    connect(cfg.ray.address)
    gpu = use_gpu(cfg.train.device, ray.cluster_resources().get("GPU", 0))
    check_sync_batchnorm(cfg, gpu)
    if not job.run.remote:
        check_reachable(cfg)
    set_worker_start_timeout(cfg.train.start_timeout_s)
    return gpu


def launch(cfg: Config) -> Path:
    """Train ``cfg`` (resuming its run if one of that name exists); returns the run directory."""
    job = resolve_run(cfg)
    check_run_dir(job)
    local = job.cfg.train.worker_range() == (0, 0)
    if local:
        import torch

        gpu = use_gpu(job.cfg.train.device, torch.cuda.device_count())
    else:
        gpu = _ray_gpu(job)
    record_run(job)
    print(f"run directory: {job.run.where()}\ndata: {job.cfg.data.source}", flush=True)
    if local:
        train_loop(job, LocalSession(job.run.local_dir, keep=job.cfg.train.keep_checkpoints, gpu=gpu))
    else:
        run_trainer(lambda: build_trainer(job, gpu), job.cfg.train.max_failures)
    return job.run.local_dir
