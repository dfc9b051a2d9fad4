"""The driver side of ``vaegan-dist train``: resolve the run once (:mod:`vaegan_dist.train.resolve`), check
it against the resume policy (:mod:`vaegan_dist.train.resume`), build the trainer, run it.

Building the ``TorchTrainer`` is kept apart from running it, so a Tune trial can build one for its own run
directory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vaegan_dist.config import Config, ConfigError
from vaegan_dist.ray_compat import WORKER_ENV, configure_train_controller
from vaegan_dist.train.cluster import check_reachable, connect
from vaegan_dist.train.errors import user_error_from
from vaegan_dist.train.job import TrainJob
from vaegan_dist.train.loop import train_loop
from vaegan_dist.train.resolve import resolve_run
from vaegan_dist.train.resume import check_run_dir, record_run
from vaegan_dist.train.runtime import collective_backend, use_gpu
from vaegan_dist.train.session import LocalSession


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
            worker_runtime_env={"env_vars": dict(WORKER_ENV)},
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


def _ray_gpu(job: TrainJob) -> bool:
    """Connect, decide GPU or CPU workers, and check what Ray itself would notice only later."""
    import ray

    cfg = job.cfg
    connect(cfg.ray.address)
    gpu = use_gpu(cfg.train.device, ray.cluster_resources().get("GPU", 0))
    check_sync_batchnorm(cfg, gpu)
    if not job.run.remote:
        check_reachable(cfg)
    configure_train_controller(cfg.train.start_timeout_s)
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
