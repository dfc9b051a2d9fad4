"""Averages over the DDP ranks for what the objective decides outside DDP's gradient hooks: the equilibrium
trick's costs and the adaptive gamma's last-layer gradients. Every rank must call them at the same point."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.distributed as dist

_alone = False  # within this_rank_only()


def world_size() -> int:
    """The default process group's size; 1 when none is running (one process, tests) and within
    :func:`this_rank_only`."""
    if _alone:
        return 1
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


@contextlib.contextmanager
def this_rank_only() -> Iterator[None]:
    """Within: the averages over ranks are this rank's own values. For work one rank does alone while the others
    do something else (rank 0 counting a step's FLOPs through the objective): a collective there would wait for,
    or pair with, whatever collective the other ranks call next."""
    global _alone
    before, _alone = _alone, True
    try:
        yield
    finally:
        _alone = before


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """``values`` averaged over the ranks in one all-reduce, on the device (no host read); a copy, so the
    caller's tensor is left as it was; ``values`` itself when there is one rank."""
    if world_size() > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= world_size()
    return values
