"""One place that decides, per model kind, which networks train, how one step's gradients are computed
and which metrics a person watches. The training step is the same for every kind; only this changes.

Today there is one kind, the paper's VAE/GAN; the baselines (a plain VAE, a VAE with the Dis_l
similarity, a plain GAN) are new entries here, not ``if kind ==`` branches in the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vaegan_dist.objectives.losses import compute_losses, run_forward
from vaegan_dist.objectives.routing import compute_gradients


@dataclass
class StepOutcome:
    """What one forward/backward leaves for the training step: the gradients are in ``.grad``."""

    metrics: dict[str, torch.Tensor]  # detached scalars, named "group/name"
    gan_costs: tuple[torch.Tensor, torch.Tensor] | None  # (real, fake) for the equilibrium trick, if any


@dataclass(frozen=True)
class ModelKind:
    name: str
    progress: tuple[tuple[str, str, str], ...]  # (metric key, label, format) on the console progress line
    loss_terms: tuple[str, ...]  # the metrics that must stay finite, in the order a failure names them

    def forward_backward(self, networks: dict[str, nn.Module], x: torch.Tensor, eps: torch.Tensor,
                         z_p: torch.Tensor, objective, autocast) -> StepOutcome:
        """Forward once under ``autocast``, then fill the gradient of every network in ``networks`` (the
        model's ``networks()``, possibly DDP-wrapped; see objectives.routing)."""
        encoder, decoder, discriminator = (networks[n] for n in ("encoder", "decoder", "discriminator"))
        with autocast():
            fwd = run_forward(encoder, decoder, discriminator, x, eps, z_p)
            losses = compute_losses(fwd, objective)
        compute_gradients(fwd, losses, encoder, decoder, discriminator, objective)
        terms = {"loss/l_prior": losses.l_prior.detach(), "loss/l_llike": losses.l_llike.detach(),
                 "loss/l_gan": losses.l_gan.detach(), "loss/l_gen": losses.l_gen.detach()}
        metrics = {
            **terms,
            "loss/encoder": terms["loss/l_prior"] + terms["loss/l_llike"],
            "gan/real_cost": losses.real_cost,
            "gan/fake_cost": losses.fake_cost,
            "gan/d_real": losses.d_real,
            "gan/d_recon": losses.d_recon,
            "gan/d_prior": losses.d_prior,
            "stats/kl_per_dim": terms["loss/l_prior"] / fwd.mu.shape[1],
        }
        return StepOutcome(metrics, (losses.real_cost, losses.fake_cost))


VAEGAN_KIND = ModelKind(
    name="vaegan",
    progress=(("loss/l_llike", "l_llike", "9.2f"), ("loss/l_prior", "l_prior", "7.2f"), ("loss/l_gan", "l_gan", "6.3f"),
              ("gan/d_real", "D(x)", ".2f"), ("gan/d_recon", "D(x~)", ".2f"), ("gan/d_prior", "D(x_p)", ".2f")),
    loss_terms=("loss/l_prior", "loss/l_llike", "loss/l_gan", "loss/l_gen"),
)

KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (VAEGAN_KIND,)}


def model_kind(name: str = "vaegan") -> ModelKind:
    return KINDS[name]
