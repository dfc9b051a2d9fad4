"""One optimisation step: forward once, route gradients (per the model kind), then step the optimisers.

A step issues no host synchronisation on a GPU: the equilibrium trick's decisions stay on the device and mask the
optimiser updates instead of branching on them (see :func:`vaegan_dist.train.optim.step_where`; on a CPU, where
reading them costs nothing, the step branches: ``Runtime.skips_on_host``), the
warm-up and lazy R1 are decided from the step number, and metrics stay tensors until the loop logs them.
"""

from __future__ import annotations

import torch
from torch import nn

from vaegan_dist.data.codec import to_unit_range
from vaegan_dist.objectives import GanPhase, ModelKind, equilibrium_updates, model_kind
from vaegan_dist.objectives.ranks import mean_over_ranks, world_size
from vaegan_dist.train.ema import WeightAverage
from vaegan_dist.train.optim import set_lrs, step_where
from vaegan_dist.train.runtime import Runtime


class TrainStep:
    """Holds the (possibly DDP-wrapped) networks and optimisers; call it with a uint8 batch.

    The same code runs with one process, under DDP and in tests. Every rank runs the same backward
    passes in the same order (DDP requires it), and the equilibrium decision uses costs averaged over
    ranks so that every replica skips the same optimiser steps. ``ema``, if given, is updated after every
    step from the live weights.
    """

    def __init__(self, networks: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer], cfg,
                 runtime: Runtime, noise_seed: int, kind: ModelKind | None = None,
                 ema: tuple[WeightAverage, nn.Module] | None = None):
        self.kind = kind or model_kind()
        self.networks = networks
        self.optimizers = optimizers
        self.cfg = cfg
        self.runtime = runtime
        self.latent_dim = cfg.model.latent_dim
        self.noise = torch.Generator(device=runtime.device)
        self.noise.manual_seed(noise_seed)
        self.ema = ema  # (the average, the live unwrapped model it follows)

    def __call__(self, images: torch.Tensor, step: int, noise: tuple[torch.Tensor, torch.Tensor] | None = None,
                 attributes: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One step on a uint8 batch; ``noise`` = (eps, z_p) replaces this rank's own draws (tests);
        ``attributes`` (0/1 [B, A]) only for an attribute-conditioned model.
        Returns detached scalar metrics; "loss/*" keys are the terms that must stay finite."""
        obj, device = self.cfg.objective, self.runtime.device
        x = to_unit_range(images, device, self.runtime.memory_format, self.runtime.dtype)
        b = x.shape[0]
        if noise is None:
            # Drawn in the batch's dtype: float32 normals come from a vectorised path whose last digits
            # differ between CPUs (AVX2 and scalar), so the fp64 golden tests draw fp64 ones.
            eps, z_p = (torch.randn(b, self.latent_dim, device=device, dtype=x.dtype, generator=self.noise)
                        for _ in range(2))
        else:
            eps, z_p = (t.to(device, x.dtype) for t in noise)

        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        y = None if attributes is None else attributes.to(device)
        phase = GanPhase.at(step, obj)
        outcome = self.kind.forward_backward(self.networks, x, eps, z_p, obj, self.runtime.autocast, y, phase)

        update: dict[str, bool | torch.Tensor] = dict.fromkeys(self.optimizers, True)
        if "discriminator" in update and not phase.gan_on:  # the warm-up
            update["discriminator"] = False
        if obj.equilibrium and outcome.gan_costs is not None and phase.gan_on:
            real_cost, fake_cost = mean_over_ranks(torch.stack(outcome.gan_costs))
            decoder, update["discriminator"] = equilibrium_updates(
                real_cost, fake_cost, obj.equilibrium_value, obj.equilibrium_margin)
            if self.kind.decoder_plays_gan:  # vae_disl's decoder learns L_llike alone: never paused by the game
                update["decoder"] = decoder

        lrs = set_lrs(self.optimizers, step, self.cfg.train.steps, self.cfg.optim)
        grad_norms = {}
        for name, opt in self.optimizers.items():
            if self.cfg.optim.grad_clip > 0:
                grad_norms[name] = torch.nn.utils.clip_grad_norm_(self.networks[name].parameters(),
                                                                  self.cfg.optim.grad_clip)
            if update[name] is True:
                opt.step()
            elif update[name] is False:
                continue
            elif self.runtime.skips_on_host:
                if bool(update[name]):
                    opt.step()
            else:
                step_where(opt, update[name])
        if self.ema is not None:
            average, live = self.ema
            average.update(live, b * world_size(), (step + 1) * b * world_size())

        return {
            **outcome.metrics,
            **{f"equilibrium/{k}_skipped": _skipped(update[k]) for k in ("decoder", "discriminator") if k in update},
            **{f"lr/{k}": torch.tensor(v) for k, v in lrs.items()},
            **{f"grad_norm/{k}": v.detach() for k, v in grad_norms.items()},
        }


def _skipped(update: bool | torch.Tensor) -> torch.Tensor:
    return (~update).float() if isinstance(update, torch.Tensor) else torch.tensor(float(not update))
