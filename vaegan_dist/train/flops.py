"""The arithmetic of one training step, counted, and its share of the device's measured peak.

As nanoGPT reports model FLOP utilisation, the progress line and TensorBoard (``perf/*``) carry the share of the
device's peak that the step reaches: the step's matmul and convolution FLOPs (what a peak is measured in; the
elementwise work, the optimiser and the all-reduce are not counted, they are what the share leaves out) divided
by the step's time and by the peak of :mod:`vaegan_dist.train.peak`, both for one worker.

The FLOPs are counted, not estimated: one forward and backward of the model kind, as the training step runs it,
goes through a dispatch mode that adds up ``torch.utils.flop_counter``'s formula for every matmul and
convolution, forward and backward (R1's double backward included). It runs on a CPU copy of the networks at
batch 2 and is scaled to the real batch (every counted op is linear in the batch), so it costs a fraction of
one step and touches no weight of the run (nor the global random stream: its inputs have their own generator).
The fused loss kernels run their PyTorch reference there, whatever ``VAEGAN_KERNELS`` says (the CPU copy cannot
run the Triton kernels), and cost no counted FLOPs either way. ``FlopCounterMode`` itself cannot count a step with
R1: its per-module hooks refuse ``autograd.grad`` on inputs. The count is of the GAN game's step: during a warm-up
(``objective.gan_start``) the step does less and the share shown then is too high.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from vaegan_dist.config import ObjectiveConfig
from vaegan_dist.objectives import GanPhase, ModelKind
from vaegan_dist.objectives.ranks import this_rank_only
from vaegan_kernels.dispatch import use_backend

_COUNT_BATCH = 2


class _CountFlops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


@dataclass(frozen=True)
class StepFlops:
    """Matmul and convolution FLOPs of one step of one worker at its batch size."""

    plain: float  # a step without R1
    with_r1: float  # a lazy-R1 step (the same as ``plain`` when R1 is off)
    r1_every: int  # 0 = R1 off

    @property
    def per_step(self) -> float:
        """The mean over R1's interval: what a run's average step costs."""
        if self.r1_every <= 0:
            return self.plain
        return self.plain + (self.with_r1 - self.plain) / self.r1_every


def count_step_flops(networks: dict[str, nn.Module], kind: ModelKind, objective: ObjectiveConfig, latent_dim: int,
                     image_size: int, batch: int, attributes: int = 0) -> StepFlops:
    """Count one step's FLOPs for ``batch`` images per worker (see the module doc). ``networks`` are the model's
    unwrapped networks; they are copied, never stepped."""
    copies = {name: copy.deepcopy(net).float().cpu().train() for name, net in networks.items()}
    b, gen = _COUNT_BATCH, torch.Generator().manual_seed(0)
    x = torch.rand(b, 3, image_size, image_size, generator=gen) * 2 - 1
    eps, z_p = torch.randn(b, latent_dim, generator=gen), torch.randn(b, latent_dim, generator=gen)
    y = torch.ones(b, attributes) if attributes else None
    r1_on = objective.r1_gamma > 0

    def one(r1_now: bool) -> float:
        counter = _CountFlops()
        with use_backend("reference"), this_rank_only(), counter:  # rank 0 counts alone (train/loop.py)
            kind.forward_backward(copies, x, eps, z_p, objective, contextlib.nullcontext, y,
                                  GanPhase(gan_on=True, r1_now=r1_now))
        return counter.total * batch / b

    plain = one(False)
    return StepFlops(plain, one(True) if r1_on else plain, objective.r1_every if r1_on else 0)


@dataclass
class Utilisation:
    """One worker's step against its device's peak; what ``perf/*`` and the progress line show."""

    flops: StepFlops
    peak_gflops: float  # measured, vaegan_dist.train.peak
    # Called with a sustained rate well above peak_gflops (the peak was measured on a busy machine), once.
    on_new_peak: Callable[[float], None] | None = None

    # The FLOPs are the mean over R1's interval: a log interval with one R1 step more than its share overstates
    # the rate by up to (with_r1 - plain) / per_step, 7% for the smoke step. Only a rate beyond that margin says
    # the peak was measured low.
    _MARGIN = 1.1

    def metrics(self, step_time_s: float) -> dict[str, float]:
        achieved = self.flops.per_step / max(step_time_s, 1e-9) / 1e9
        if achieved > self._MARGIN * self.peak_gflops and self.on_new_peak is not None:
            report, self.on_new_peak = self.on_new_peak, None
            try:
                report(achieved)
            except Exception as err:  # only a cache: never a reason to stop a run
                print(f"the device's peak was not updated ({type(err).__name__}: {str(err)[:200]})", flush=True)
        self.peak_gflops = max(self.peak_gflops, achieved)  # a share above 1 is never shown
        return {"perf/step_gflop": self.flops.per_step / 1e9, "perf/achieved_gflops": achieved,
                "perf/peak_gflops": self.peak_gflops, "perf/peak_share": achieved / self.peak_gflops}
