"""Stopping a run whose losses or weights stop being finite, before it writes them into a checkpoint.

Checking every step on the host would cost a device sync per step, so each step only folds "which loss
terms are not finite" into a small tensor on the device (no sync). At every log or checkpoint step all
ranks reduce it together (one collective, the same on every rank, so none is left waiting) and the run
stops with the first step and term that went bad. Checkpoints are written only after that check, and
only from finite weights, so the newest checkpoint on disk is always a good one to resume from.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from vaegan_dist.errors import TrainingError
from vaegan_dist.objectives.ranks import world_size

NEVER = 2**62  # "no bad step yet"


class NonFiniteWatch:
    def __init__(self, device: torch.device, terms: tuple[str, ...]):
        self.terms = list(terms)
        self.first_bad = torch.full((len(terms),), NEVER, dtype=torch.int64, device=device)  # first bad step per term
        self.bad_values = torch.zeros(len(terms), device=device)  # the value at that step

    def update(self, losses: dict[str, torch.Tensor], step: int) -> None:
        """Fold one step's metrics in (``self.terms`` of them are checked), on the device, without a sync."""
        values = torch.stack([losses[t].detach().float().reshape(()) for t in self.terms])
        bad = ~torch.isfinite(values)
        newly = bad & (self.first_bad == NEVER)
        self.first_bad = torch.where(newly, torch.full_like(self.first_bad, step), self.first_bad)
        self.bad_values = torch.where(newly, values, self.bad_values)

    def check(self) -> None:
        """Raise on every rank if any rank saw a non-finite term since the run (re)started."""
        first = self.first_bad.clone()
        if world_size() > 1:
            dist.all_reduce(first, op=dist.ReduceOp.MIN)
        steps = first.tolist()
        if min(steps) == NEVER:
            return
        index = min(range(len(steps)), key=steps.__getitem__)
        seen_here = bool(self.first_bad[index] == first[index])  # else another rank saw it first
        value = float(self.bad_values[index])
        shown = ("non-finite" if not seen_here else "nan" if math.isnan(value) else "inf" if value > 0 else "-inf")
        raise TrainingError(f"step {steps[index] + 1}: loss term {self.terms[index]} became {shown}; training stopped "
                            "and no checkpoint was written after it (the newest one on disk is good): lower the "
                            "learning rates or gamma, or set optim.grad_clip")


def check_finite_weights(networks: dict[str, nn.Module], step: int) -> None:
    """The last line of defence before a checkpoint: parameters and batch-norm statistics, one host sync
    per checkpoint (not per step, not per tensor)."""
    tensors = [(f"{name}.{key}", t) for name, network in networks.items()
               for key, t in network.state_dict(keep_vars=True).items() if t.is_floating_point()]
    finite = torch.stack([torch.isfinite(t).all() for _, t in tensors])
    if bool(finite.all()):
        return
    bad = tensors[int((~finite).nonzero()[0])][0]
    raise TrainingError(f"step {step}: {bad} is not finite; training stopped before writing the checkpoint "
                        "(the newest one on disk is good)")
