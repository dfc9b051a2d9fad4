"""Training recipe options beyond the paper: the GAN warm-up, the adaptive gamma and the R1 penalty.

They answer what users of VAE/GAN ports ask most (collapse to noise, how to set gamma, when to switch the
discriminator on), with the parts the best trainers of this family use: taming-transformers' and
latent-diffusion's ``calculate_adaptive_weight`` and ``disc_start``, StyleGAN2's lazy R1. All are off in the
paper presets; ``bench/time_to_quality.py`` measures which help. Exponential weight averaging is in
:mod:`vaegan_dist.train.ema` (it does not touch the gradients).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vaegan_dist.objectives.losses import at_least_fp32
from vaegan_dist.objectives.ranks import mean_over_ranks

ADAPTIVE_EPS = 1e-4  # taming-transformers' denominator guard
ADAPTIVE_MAX = 1e4  # and its clamp


@dataclass(frozen=True)
class GanPhase:
    """What the GAN game does at one step; decided from the step number alone (the same on every rank, no
    device read)."""

    gan_on: bool = True  # the decoder's GAN term and the discriminator's update (off during the warm-up)
    r1_now: bool = False  # a lazy R1 step

    @classmethod
    def at(cls, step: int, objective) -> GanPhase:
        gan_on = step >= objective.gan_start
        r1_gamma, every = objective.r1_gamma, objective.r1_every
        return cls(gan_on=gan_on, r1_now=gan_on and r1_gamma > 0 and step % every == 0)


GAME_ON = GanPhase()  # the game from the start, no R1: the default of every caller


def unwrapped(network: nn.Module) -> nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return getattr(network, "module", network)


def decoder_last_layer(decoder: nn.Module) -> torch.Tensor:
    """The weight of the decoder's last convolution (to RGB): where the adaptive gamma compares gradients."""
    return unwrapped(decoder).to_rgb.weight


def adaptive_gan_weight(x_fake: torch.Tensor, g_llike: torch.Tensor, g_gen: torch.Tensor,
                        last_layer: torch.Tensor) -> torch.Tensor:
    """lambda = ||d L_llike / d W|| / (||d L_gen / d W|| + 1e-4), clamped to [0, 1e4] and detached, in fp32.

    ``g_llike`` and ``g_gen`` are the two losses' gradients at the decoder's output ``x_fake``; pulling each
    back through the last layer alone (two short backward passes, no parameter's ``.grad`` is touched, so
    DDP's hooks do not fire) gives the gradients at W that taming-transformers compares.

    Under DDP the two gradients are averaged over the ranks first, as DDP averages the parameters' gradients,
    so that every rank uses (and logs) the lambda of the whole batch, the one a single process would compute;
    from each rank's own gradients the ranks disagreed (157.8 against 147.3 at one step with 2 ranks)."""
    g_w_llike, g_w_gen = (at_least_fp32(torch.autograd.grad(x_fake, last_layer, grad_outputs=g,
                                                              retain_graph=True)[0]) for g in (g_llike, g_gen))
    g_w_llike, g_w_gen = mean_over_ranks(torch.stack([g_w_llike, g_w_gen]))
    ratio = g_w_llike.norm() / (g_w_gen.norm() + ADAPTIVE_EPS)
    return ratio.clamp(0.0, ADAPTIVE_MAX).detach()


def r1_penalty(discriminator: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """E_x ||grad_x D(x)||^2 on real images (the logit's gradient), differentiable in the discriminator's
    weights (a double backward). Run in fp32 outside autocast, as StyleGAN2 does, through the unwrapped
    discriminator: the step's one DDP forward has already run, and the penalty's gradient joins the
    discriminator's single backward pass."""
    with torch.autocast(x.device.type, enabled=False):
        real = x.detach().requires_grad_(True)  # x is in the parameters' dtype (fp32; fp64 in tests)
        logits, _ = unwrapped(discriminator)(real, y)
        (grad,) = torch.autograd.grad(logits.sum(), real, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean()


def r1_term(discriminator: nn.Module, x: torch.Tensor, y: torch.Tensor | None, objective) -> torch.Tensor:
    """The lazy R1 term added to the discriminator's loss on an R1 step: r1_every * r1_gamma / 2 * penalty."""
    return objective.r1_every * objective.r1_gamma / 2 * r1_penalty(discriminator, x, y)
