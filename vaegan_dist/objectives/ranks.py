"""Averages over the DDP ranks for what the objective decides outside DDP's gradient hooks: the equilibrium
trick's costs and the adaptive gamma's last-layer gradients. Every rank must call them at the same point."""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    """The default process group's size; 1 when none is running (one process, tests)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """``values`` averaged over the ranks in one all-reduce, on the device (no host read); a copy, so the
    caller's tensor is left as it was; ``values`` itself when there is one rank."""
    if world_size() > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= world_size()
    return values
