"""The driver side of ``vaegan-dist train``: resolve the run, check the data, start Ray Train.

Everything a worker needs is resolved here first (absolute paths, the run name, the built-in data set
rendered once), so that bad input fails in seconds on the driver instead of inside N workers.
"""

from __future__ import annotations

import datetime
import os
from pathlib import Path

import yaml

from vaegan_dist.config import (
    Config,
    ConfigError,
    config_from_dict,
    config_to_dict,
    validate,
)
from vaegan_dist.data.manifest import DataError
from vaegan_dist.data.sources import canonical, open_source
from vaegan_dist.data.stream import check_image_size
from vaegan_dist.data.synthetic import ensure_synthetic
from vaegan_dist.train.cluster import check_reachable, connect
from vaegan_dist.train.loop import train_loop
from vaegan_dist.train.runtime import use_gpu
from vaegan_dist.train.session import LocalSession
from vaegan_dist.train.storage import RunStorage, is_url


def resolve_run(cfg: Config, now: datetime.datetime | None = None) -> Config:
    """A copy of ``cfg`` with absolute storage and data paths, a run name and checked data."""
    cfg = config_from_dict(config_to_dict(cfg))
    if not is_url(cfg.train.storage_path):
        cfg.train.storage_path = str(Path(cfg.train.storage_path).expanduser().resolve())
    elif cfg.train.workers == "0":
        raise ConfigError(f"config key 'train.storage_path' is a URL ({cfg.train.storage_path}); train.workers=0 "
                          "(no Ray) writes checkpoints to local or NFS paths only")
    if not cfg.train.name:
        cfg.train.name = f"{cfg.preset}-{(now or datetime.datetime.now()).strftime('%Y%m%d-%H%M%S')}"
    if cfg.data.source:
        cfg.data.source = canonical(cfg.data.source)
        check_image_size(open_source(cfg.data.source, cfg.data.split), cfg.data.image_size)
    else:
        cfg.data.source = str(ensure_synthetic(Path(cfg.data.cache_dir), cfg.data.synthetic_samples,
                                               cfg.data.image_size))
    return validate(cfg)


def _record_config(cfg: Config, storage: RunStorage) -> None:
    """Save the resolved config; on a rerun, say which keys changed since the run was started."""
    previous = storage.read_text("config.yaml")
    if previous is not None:
        try:
            old = config_to_dict(validate(config_from_dict(yaml.safe_load(previous))))
        except (ValueError, yaml.YAMLError):
            old = {}
        new = config_to_dict(cfg)
        changed = [f"{g}.{k}: {old[g][k]!r} -> {v!r}" for g, vals in new.items() if isinstance(vals, dict)
                   for k, v in vals.items() if g in old and old[g].get(k) != v]
        print(f"resuming run {cfg.train.name}" + (f"; changed: {', '.join(changed)}" if changed else ""))
    storage.write_text("config.yaml", yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def ray_train_loop(config: dict) -> None:
    """Ray Train's entry point (a one-argument function)."""
    train_loop(config)


def _fit_with_ray(cfg: Config, storage: RunStorage) -> None:
    import ray
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    connect(cfg.ray.address)
    gpu = use_gpu(cfg.train.device, ray.cluster_resources().get("GPU", 0))
    if cfg.model.sync_batchnorm and not gpu:
        raise ConfigError("config key 'model.sync_batchnorm' needs GPU workers: PyTorch's SyncBatchNorm has no CPU "
                          "implementation; got true on a CPU-only job")
    if not storage.remote:
        check_reachable(cfg, storage.local_dir)
    low, high = cfg.train.worker_range()
    # Read by Ray Train's controller, which inherits it from this driver: one start attempt waits this long.
    os.environ["RAY_TRAIN_WORKER_GROUP_START_TIMEOUT_S"] = str(cfg.train.start_timeout_s)
    trainer = TorchTrainer(
        ray_train_loop,
        train_loop_config=config_to_dict(cfg),
        scaling_config=ScalingConfig(num_workers=low if low == high else (low, high), use_gpu=gpu,
                                     resources_per_worker={"CPU": cfg.train.cpus_per_worker, **({"GPU": 1} if gpu else {})}),
        torch_config=TorchConfig(backend="nccl" if gpu else "gloo", timeout_s=cfg.train.collective_timeout_s),
        run_config=RunConfig(
            name=cfg.train.name,
            storage_path=cfg.train.storage_path,
            # max_failures: restarts from the last checkpoint after a worker dies; controller_failure_limit
            # bounds the attempts to start the worker group, which Ray otherwise retries forever.
            failure_config=FailureConfig(max_failures=cfg.train.max_failures,
                                         controller_failure_limit=cfg.train.start_retries),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.train.keep_checkpoints),
            logging_config=LoggingConfig(log_level="WARNING"),  # Ray's per-report INFO lines drown the progress
            # Ray 2.60 patches print() in workers to both print and log each line: progress would show twice.
            worker_runtime_env={"env_vars": {"RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}},
        ),
    )
    trainer.fit()


def launch(cfg: Config) -> Path:
    """Train ``cfg`` (resuming its run if one of that name exists); returns the run directory."""
    cfg = resolve_run(cfg)
    storage = RunStorage(cfg.train.storage_path, cfg.train.name)
    if not storage.remote:
        storage.local_dir.mkdir(parents=True, exist_ok=True)
    _record_config(cfg, storage)
    print(f"run directory: {storage.url if storage.remote else storage.local_dir}\ndata: {cfg.data.source}", flush=True)
    if cfg.train.worker_range() == (0, 0):
        import torch

        gpu = use_gpu(cfg.train.device, torch.cuda.device_count())
        train_loop(config_to_dict(cfg), LocalSession(storage.local_dir, keep=cfg.train.keep_checkpoints, gpu=gpu))
    else:
        _fit_with_ray(cfg, storage)
    return storage.local_dir


__all__ = ["launch", "resolve_run", "DataError"]
