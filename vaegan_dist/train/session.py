"""Where the training loop runs: inside Ray Train, or in this process without Ray.

The loop talks to a session for four things only (rank, DDP wrapping, the checkpoint to resume from,
reporting), so the same loop runs under Ray with N workers and in fast tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import torch
from torch import nn

from vaegan_dist.train.checkpoint import checkpoint_name, find_checkpoints


class Session(Protocol):
    world_rank: int
    world_size: int
    gpu: bool

    def device(self) -> torch.device: ...
    def prepare(self, module: nn.Module) -> nn.Module: ...
    def restore_dir(self) -> contextlib.AbstractContextManager[Path | None]: ...
    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None, step: int) -> None: ...


def _quiet_report_log() -> None:
    """Ray 2.60 logs every report (all metrics) at INFO under a logger named after its file, which
    LoggingConfig(log_level) does not reach; at our log interval it would drown the progress lines."""
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # a later Ray moved it; its default is then whatever that version chose
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)


def _step_of(checkpoint_dir: str | Path) -> int:
    name = Path(str(checkpoint_dir).rstrip("/")).name
    return int(name.removeprefix("checkpoint_")) if name.removeprefix("checkpoint_").isdigit() else -1


class RaySession:
    """Inside a Ray Train worker (Train V2 API).

    ``local_run_dir`` (local or NFS storage) lets a restart find checkpoints that were complete on disk but
    not yet registered by Ray's controller when a worker died (the controller learns of a report only at
    its next poll): the newer of Ray's latest checkpoint and the newest complete one on disk wins.
    """

    def __init__(self, local_run_dir: Path | None = None) -> None:
        import ray.train

        self.local_run_dir = local_run_dir
        _quiet_report_log()
        ctx = ray.train.get_context()
        self.world_rank, self.world_size = ctx.get_world_rank(), ctx.get_world_size()
        self.gpu = torch.cuda.is_available() and ray.train.torch.get_device().type == "cuda"

    def device(self) -> torch.device:
        import ray.train.torch

        return ray.train.torch.get_device()

    def prepare(self, module: nn.Module) -> nn.Module:
        """Move to the worker's device; wrap in DDP when there is more than one worker."""
        import ray.train.torch

        return ray.train.torch.prepare_model(module, parallel_strategy_kwargs={"find_unused_parameters": False})

    @contextlib.contextmanager
    def restore_dir(self) -> Iterator[Path | None]:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        on_disk = find_checkpoints(self.local_run_dir) if self.local_run_dir is not None else []
        if on_disk and (checkpoint is None or _step_of(on_disk[-1]) > _step_of(checkpoint.path)):
            yield on_disk[-1]
            return
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as directory:
            yield Path(directory)

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None, step: int) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint,
                         checkpoint_dir_name=checkpoint_name(step) if checkpoint else None)


class LocalSession:
    """One process, no Ray: checkpoints are moved into ``run_dir`` with an atomic rename."""

    world_rank = 0
    world_size = 1

    def __init__(self, run_dir: Path, keep: int = 3, gpu: bool = False):
        self.run_dir = Path(run_dir)
        self.keep = keep
        self.gpu = gpu
        self.reports: list[dict[str, float]] = []

    def device(self) -> torch.device:
        return torch.device("cuda") if self.gpu else torch.device("cpu")

    def prepare(self, module: nn.Module) -> nn.Module:
        return module.to(self.device())

    @contextlib.contextmanager
    def restore_dir(self) -> Iterator[Path | None]:
        found = find_checkpoints(self.run_dir)
        yield found[-1] if found else None

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None, step: int) -> None:
        self.reports.append(dict(metrics))
        if checkpoint_dir is None:
            return
        final = self.run_dir / checkpoint_name(step)
        staging = self.run_dir / f".{final.name}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(checkpoint_dir, staging)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
        for old in find_checkpoints(self.run_dir)[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
