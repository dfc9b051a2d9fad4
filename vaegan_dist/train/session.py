"""Where the training loop runs: inside Ray Train, or in this process without Ray.

The loop talks to a session for a handful of things only (rank, DDP wrapping, the checkpoint to resume
from, where to stage a checkpoint, reporting), so the same loop runs under Ray with N workers and in
fast tests.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from torch import nn

from vaegan_dist.atomic import remove_staged, sweep_temporaries
from vaegan_dist.errors import TrainingError
from vaegan_dist.model.store import (
    checkpoint_name,
    checkpoint_step,
    find_checkpoints,
    incomplete_checkpoints,
    is_complete,
)
from vaegan_dist.objectives.ranks import world_size
from vaegan_dist.ray_compat import quiet_report_log


class Session(Protocol):
    world_rank: int
    world_size: int
    gpu: bool

    def device(self) -> torch.device: ...
    def prepare(self, module: nn.Module) -> nn.Module: ...
    def restore_dir(self) -> contextlib.AbstractContextManager[Path | None]: ...
    def staging_dir(self, step: int) -> contextlib.AbstractContextManager[Path]: ...
    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None, step: int) -> None: ...


def broadcast_from_rank0(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a plain Python object); the value itself without a process group."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_same_step(step: int) -> None:
    """Every rank must continue from the same step, or they run different numbers of steps and the last
    collective hangs until its timeout."""
    if world_size() == 1:
        return
    steps: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(steps, step)
    if len(set(steps)) > 1:
        raise TrainingError("ranks resumed at different steps "
                            f"({', '.join(f'rank {r}: {s}' for r, s in enumerate(steps))}); "
                            "every node must see the same run storage")


@dataclass(frozen=True)
class RestorePoint:
    """The checkpoint a run resumes from, as rank 0 chose it: Ray's latest, or a newer one on disk."""

    origin: str  # "ray" or "disk"
    step: int
    path: str


def agreed_restore_point(ray_checkpoint_path: str | None, local_run_dir: Path | None, rank: int,
                         broadcast: Callable[[Any], Any] = broadcast_from_rank0) -> RestorePoint | None:
    """Rank 0 picks the newer of Ray's latest checkpoint and the newest complete one on disk (Ray's
    controller learns of a report only at its next poll, so a worker that died right after writing one
    leaves a complete checkpoint Ray does not know yet); every rank gets rank 0's choice."""
    choice = None
    if rank == 0:
        ray_step = checkpoint_step(ray_checkpoint_path) if ray_checkpoint_path else -1
        on_disk = find_checkpoints(local_run_dir) if local_run_dir is not None else []
        if local_run_dir is not None:
            report_incomplete(local_run_dir)
        if on_disk and checkpoint_step(on_disk[-1]) > ray_step:
            choice = RestorePoint("disk", checkpoint_step(on_disk[-1]), str(on_disk[-1]))
        elif ray_checkpoint_path:
            choice = RestorePoint("ray", ray_step, ray_checkpoint_path)
    return broadcast(choice)


def report_incomplete(run_dir: Path) -> None:
    for skipped in incomplete_checkpoints(run_dir):
        print(f"skipping {skipped.name}: incomplete (its state.pt is missing or cut short)", flush=True)


class RaySession:
    """Inside a Ray Train worker (Train V2 API). ``local_run_dir`` is the run directory when it is a local or
    NFS path (None for URL storage): complete checkpoints there count even before Ray registered them."""

    def __init__(self, local_run_dir: Path | None = None) -> None:
        import ray.train

        self.local_run_dir = local_run_dir
        quiet_report_log()
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
        point = agreed_restore_point(checkpoint.path if checkpoint else None, self.local_run_dir, self.world_rank)
        if point is None:
            yield None
        elif checkpoint is not None and checkpoint_step(checkpoint.path) == point.step:
            with checkpoint.as_directory() as directory:  # downloads it when the storage is a URL
                yield Path(directory)
        elif is_complete(Path(point.path)):
            yield Path(point.path)
        else:
            raise TrainingError(f"rank {self.world_rank}: {point.path} (the checkpoint rank 0 resumes from) is not "
                                "readable on this node; every node must see the same run storage")

    @contextlib.contextmanager
    def staging_dir(self, step: int) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix=f"vaegan-{checkpoint_name(step)}-") as tmp:
            yield Path(tmp)

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None, step: int) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        try:
            ray.train.report(metrics, checkpoint=checkpoint,
                             checkpoint_dir_name=checkpoint_name(step) if checkpoint else None)
        except OSError as err:  # persisting the checkpoint into the run storage failed (disk full, quota)
            partial = self.local_run_dir / checkpoint_name(step) if self.local_run_dir else None
            if partial is not None and partial.exists() and not is_complete(partial):
                shutil.rmtree(partial, ignore_errors=True)
            raise TrainingError(checkpoint_write_failed(step, err)) from None


def checkpoint_write_failed(step: int, err: OSError) -> str:
    reason = err.strerror or str(err).splitlines()[0]
    return (f"step {step}: the checkpoint could not be written ({reason}"
            f"{': ' + str(err.filename) if err.filename else ''}); temporary files were removed and earlier "
            "checkpoints are intact: free space, then rerun the same command to resume")


class LocalSession:
    """One process, no Ray: a checkpoint is written into a hidden staging directory inside the run
    directory and renamed into place, so it is written once and a failure leaves nothing behind."""

    world_rank = 0
    world_size = 1

    def __init__(self, run_dir: Path, keep: int = 3, gpu: bool = False):
        self.run_dir = Path(run_dir)
        self.keep = keep
        self.gpu = gpu
        self.reports: list[dict[str, float]] = []
        remove_staged(self.run_dir, ".checkpoint_*.tmp")  # staged by a run that was killed
        sweep_temporaries(self.run_dir)

    def device(self) -> torch.device:
        return torch.device("cuda") if self.gpu else torch.device("cpu")

    def prepare(self, module: nn.Module) -> nn.Module:
        return module.to(self.device())

    @contextlib.contextmanager
    def restore_dir(self) -> Iterator[Path | None]:
        report_incomplete(self.run_dir)
        found = find_checkpoints(self.run_dir)
        yield found[-1] if found else None

    @contextlib.contextmanager
    def staging_dir(self, step: int) -> Iterator[Path]:
        staging = self.run_dir / f".{checkpoint_name(step)}.tmp"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        try:
            yield staging
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # already renamed away unless something failed

    def report(self, metrics: dict[str, float], checkpoint_dir: Path | None, step: int) -> None:
        self.reports.append(dict(metrics))
        if checkpoint_dir is None:
            return
        final = self.run_dir / checkpoint_name(step)
        if final.is_symlink() or (final.exists() and not final.is_dir()):
            raise TrainingError(f"step {step}: {final} exists and is not a checkpoint directory; move it away and "
                                "rerun to resume")
        try:
            if final.exists():
                shutil.rmtree(final)  # an incomplete copy of this step (a complete one is never rewritten)
            os.replace(checkpoint_dir, final)
        except OSError as err:
            raise TrainingError(checkpoint_write_failed(step, err)) from None
        for old in find_checkpoints(self.run_dir)[: -self.keep]:
            shutil.rmtree(old, ignore_errors=True)
