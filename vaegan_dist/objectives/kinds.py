"""One place that decides, per model kind, which networks train, how one step's gradients are computed
and which metrics a person watches. The training step is the same for every kind; only this changes.

The four kinds are the paper's comparison (its sample figure), all with the same networks:

    vaegan    Enc <- L_prior + L_llike ; Dec <- gamma*L_llike - L_GAN ; Dis <- L_GAN   (L_llike in Dis_l)
    vae       Enc, Dec <- L_prior + L_pixel  (element-wise Gaussian, unit variance); no discriminator
    vae_disl  Enc <- L_prior + L_llike ; Dec <- L_llike ; Dis <- L_GAN   (the decoder gets no GAN gradient)
    gan       Dec <- its GAN loss from z_p ~ p(z) ; Dis <- L_GAN ; no encoder

The plain VAE's reconstruction term is reported as ``loss/l_llike`` like the others' (it is the same
Gaussian negative log-likelihood, in pixel space instead of Dis_l), so curves line up across kinds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

import vaegan_kernels as kernels
from vaegan_dist.model.vaegan import KIND_NETWORKS
from vaegan_dist.objectives.losses import (
    at_least_fp32,
    compute_losses,
    gan_terms,
    repeat_condition,
    run_forward,
)
from vaegan_dist.objectives.recipe import GAME_ON, GanPhase, r1_term
from vaegan_dist.objectives.routing import compute_generator_gradients, compute_gradients


@dataclass
class StepOutcome:
    """What one forward/backward leaves for the training step: the gradients are in ``.grad``."""

    metrics: dict[str, torch.Tensor]  # detached scalars, named "group/name"
    gan_costs: tuple[torch.Tensor, torch.Tensor] | None  # (real, fake) for the equilibrium trick, if any


ForwardBackward = Callable[[dict[str, nn.Module], torch.Tensor, torch.Tensor, torch.Tensor, object, object,
                            torch.Tensor | None, GanPhase], StepOutcome]


@dataclass(frozen=True)
class ModelKind:
    name: str
    networks: tuple[str, ...]  # the networks this kind has (each with its optimiser and DDP wrapper)
    progress: tuple[tuple[str, str, str], ...]  # (metric key, label, format) on the console progress line
    loss_terms: tuple[str, ...]  # the metrics that must stay finite, in the order a failure names them
    run: ForwardBackward
    decoder_plays_gan: bool = True  # False for vae_disl: the equilibrium trick never pauses its decoder

    @property
    def has_discriminator(self) -> bool:
        return "discriminator" in self.networks

    def forward_backward(self, networks: dict[str, nn.Module], x: torch.Tensor, eps: torch.Tensor,
                         z_p: torch.Tensor, objective, autocast, y: torch.Tensor | None = None,
                         phase: GanPhase = GAME_ON) -> StepOutcome:
        """Forward once under ``autocast``, then fill the gradient of every network in ``networks`` (the
        model's ``networks()``, possibly DDP-wrapped; see objectives.routing). ``y``: the batch's attributes,
        for an attribute-conditioned model (every network gets them), else None. ``phase``: the recipe's
        warm-up and lazy R1 at this step."""
        return self.run(networks, x, eps, z_p, objective, autocast, y, phase)


def _r1(discriminator, x, y, objective, phase: GanPhase) -> tuple[torch.Tensor | None, dict[str, torch.Tensor]]:
    if not phase.r1_now:
        return None, {}
    term = r1_term(discriminator, x, y, objective)
    return term, {"loss/r1": term.detach() / objective.r1_every}  # per step, comparable across r1_every


def _vaegan(networks, x, eps, z_p, objective, autocast, y, phase, decoder_gan: bool = True) -> StepOutcome:
    encoder, decoder, discriminator = (networks[n] for n in ("encoder", "decoder", "discriminator"))
    with autocast():
        fwd = run_forward(encoder, decoder, discriminator, x, eps, z_p, y)
        losses = compute_losses(fwd, objective)
    r1, r1_metrics = _r1(discriminator, x, y, objective, phase)
    recipe = compute_gradients(fwd, losses, encoder, decoder, discriminator, objective, decoder_gan=decoder_gan,
                               phase=phase, dis_extra=r1)
    terms = {"loss/l_prior": losses.l_prior.detach(), "loss/l_llike": losses.l_llike.detach(),
             "loss/l_gan": losses.l_gan.detach(), "loss/l_gen": losses.l_gen.detach()}
    metrics = {
        **terms,
        "loss/encoder": objective.kl_weight * terms["loss/l_prior"] + terms["loss/l_llike"],
        "gan/real_cost": losses.real_cost,
        "gan/fake_cost": losses.fake_cost,
        "gan/d_real": losses.d_real,
        "gan/d_recon": losses.d_recon,
        "gan/d_prior": losses.d_prior,
        "stats/kl_per_dim": terms["loss/l_prior"] / fwd.mu.shape[1],
        **recipe,
        **r1_metrics,
        **({} if losses.l_pixel is None else {"loss/l_pixel": losses.l_pixel.detach()}),
    }
    return StepOutcome(metrics, (losses.real_cost, losses.fake_cost))


def _vae_disl(networks, x, eps, z_p, objective, autocast, y, phase) -> StepOutcome:
    return _vaegan(networks, x, eps, z_p, objective, autocast, y, phase, decoder_gan=False)


def _vae(networks, x, eps, z_p, objective, autocast, y, phase) -> StepOutcome:
    encoder, decoder = networks["encoder"], networks["decoder"]
    with autocast():
        mu, logvar = encoder(x, y)
        z, kl = kernels.reparameterize_kl(mu, logvar, eps)
        x_rec = decoder(z, y)
        l_prior = kl.mean()
        l_llike = kernels.feature_nll(x_rec, x.to(x_rec.dtype))  # 1/2 ||x~ - x||^2 over pixels
    params = [p for net in (encoder, decoder) for p in net.parameters()]
    torch.autograd.backward(objective.kl_weight * l_prior + l_llike, inputs=params)
    l_prior, l_llike = l_prior.detach(), l_llike.detach()
    metrics = {"loss/l_prior": l_prior, "loss/l_llike": l_llike,
               "loss/encoder": objective.kl_weight * l_prior + l_llike, "stats/kl_per_dim": l_prior / mu.shape[1]}
    return StepOutcome(metrics, None)


def _gan(networks, x, eps, z_p, objective, autocast, y, phase) -> StepOutcome:
    decoder, discriminator = networks["decoder"], networks["discriminator"]
    with autocast():
        x_fake = decoder(z_p, y)
        logits, _ = discriminator(torch.cat([x.to(x_fake.dtype), x_fake]), repeat_condition(y, 2))
        real, prior = at_least_fp32(logits).chunk(2)
        gan = gan_terms(real, [prior], objective)
    r1, r1_metrics = _r1(discriminator, x, y, objective, phase)
    compute_generator_gradients(x_fake, gan.l_gan, gan.l_gen, decoder, discriminator, objective, dis_extra=r1)
    with torch.no_grad():
        d_real, d_prior = torch.sigmoid(real).mean(), torch.sigmoid(prior).mean()
    metrics = {"loss/l_gan": gan.l_gan.detach(), "loss/l_gen": gan.l_gen.detach(), "gan/real_cost": gan.real_cost,
               "gan/fake_cost": gan.fake_cost, "gan/d_real": d_real, "gan/d_prior": d_prior, **r1_metrics}
    return StepOutcome(metrics, (gan.real_cost, gan.fake_cost))


_GAN_PROGRESS = (("loss/l_gan", "l_gan", "6.3f"), ("gan/d_real", "D(x)", ".2f"))
_VAE_PROGRESS = (("loss/l_llike", "l_llike", "9.2f"), ("loss/l_prior", "l_prior", "7.2f"))
KINDS: dict[str, ModelKind] = {kind.name: kind for kind in (
    ModelKind("vaegan", KIND_NETWORKS["vaegan"],
              (*_VAE_PROGRESS, *_GAN_PROGRESS, ("gan/d_recon", "D(x~)", ".2f"), ("gan/d_prior", "D(x_p)", ".2f")),
              ("loss/l_prior", "loss/l_llike", "loss/l_gan", "loss/l_gen"), _vaegan),
    ModelKind("vae_disl", KIND_NETWORKS["vae_disl"],
              (*_VAE_PROGRESS, *_GAN_PROGRESS, ("gan/d_recon", "D(x~)", ".2f"), ("gan/d_prior", "D(x_p)", ".2f")),
              ("loss/l_prior", "loss/l_llike", "loss/l_gan", "loss/l_gen"), _vae_disl, decoder_plays_gan=False),
    ModelKind("vae", KIND_NETWORKS["vae"], _VAE_PROGRESS, ("loss/l_prior", "loss/l_llike"), _vae),
    ModelKind("gan", KIND_NETWORKS["gan"], (*_GAN_PROGRESS, ("gan/d_prior", "D(x_p)", ".2f")),
              ("loss/l_gan", "loss/l_gen"), _gan),
)}


def model_kind(name: str = "vaegan") -> ModelKind:
    if name not in KINDS:
        raise ValueError(f"unknown model kind {name!r}; choose one of: {', '.join(KINDS)}")
    return KINDS[name]
