"""The paper's three losses from one forward pass, and the generator's side of the GAN game.

Conventions (Larsen et al. 2016, eq. 8-10, signs as in the released code): L_GAN here is the
discriminator's binary cross-entropy, the positive quantity
Dis minimises; the decoder minimises gamma * L_llike - L_GAN (minimax) or its non-saturating variant.
All losses are batch means of per-sample values, in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

import vaegan_kernels as kernels


@dataclass
class Forward:
    """Everything one step computes before any gradient; B = images in the batch."""

    mu: torch.Tensor  # [B, latent]
    logvar: torch.Tensor  # [B, latent]
    z: torch.Tensor  # [B, latent], sampled from q(z|x)
    kl: torch.Tensor  # [B] fp32, per-sample KL from the prior
    x_fake: torch.Tensor  # [2B, 3, S, S]: Dec(z) then Dec(z_p), one decoder pass
    logits: torch.Tensor  # [3B]: Dis on [x, Dec(z), Dec(z_p)], one discriminator pass
    features: torch.Tensor  # [3B, F]: Dis_l on the same
    x: torch.Tensor | None = None  # [B, 3, S, S]: the data, for objective.pixel_weight

    @property
    def batch(self) -> int:
        return self.mu.shape[0]

    def parts(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split a [3B, ...] discriminator output into (data, reconstructions, prior samples)."""
        b = self.batch
        return t[:b], t[b : 2 * b], t[2 * b :]


def repeat_condition(y: torch.Tensor | None, times: int) -> torch.Tensor | None:
    """The attribute vectors of a batch for a pass over ``times`` stacked copies of it (None stays None)."""
    return None if y is None else y.repeat(times, 1)


def run_forward(encoder, decoder, discriminator, x: torch.Tensor, eps: torch.Tensor, z_p: torch.Tensor,
                y: torch.Tensor | None = None) -> Forward:
    """x -> Enc -> z -> Dec -> x~ ; z_p -> Dec -> x_p ; Dis on [x, x~, x_p] in one pass each. A conditioned
    model sees the batch's attributes y everywhere: prior samples are generated with the real images' y."""
    mu, logvar = encoder(x, y)
    z, kl = kernels.reparameterize_kl(mu, logvar, eps)
    x_fake = decoder(torch.cat([z, z_p.to(z.dtype)]), repeat_condition(y, 2))
    logits, features = discriminator(torch.cat([x.to(x_fake.dtype), x_fake]), repeat_condition(y, 3))
    return Forward(mu, logvar, z, kl, x_fake, logits, features, x)


@dataclass
class Losses:
    l_prior: torch.Tensor  # KL(q(z|x) || N(0, I))
    l_llike: torch.Tensor  # 1/2 ||Dis_l(x~) - Dis_l(x)||^2 (+ pixel_weight * 1/2 ||x~ - x||^2, if set)
    l_gan: torch.Tensor  # the discriminator's cross-entropy
    l_gen: torch.Tensor  # the decoder's GAN loss (before its weight)
    real_cost: torch.Tensor  # mean -log D(x)
    fake_cost: torch.Tensor  # mean -log(1 - D(fake)) over the fakes the discriminator is trained on
    d_real: torch.Tensor  # mean D(x)
    d_recon: torch.Tensor  # mean D(Dec(Enc(x)))
    d_prior: torch.Tensor  # mean D(Dec(z_p))
    l_pixel: torch.Tensor | None = None  # 1/2 ||x~ - x||^2, when objective.pixel_weight > 0


def at_least_fp32(t: torch.Tensor) -> torch.Tensor:
    """bf16/fp16 logits go to fp32 for the losses; fp64 stays fp64 (the golden tests run in fp64 and a
    cast down here made their curves depend on the CPU's float32 rounding)."""
    return t if t.dtype == torch.float64 else t.float()


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@dataclass
class GanTerms:
    l_gan: torch.Tensor  # the discriminator's cross-entropy
    l_gen: torch.Tensor  # the decoder's GAN loss (before its weight)
    real_cost: torch.Tensor  # mean -log D(x), detached
    fake_cost: torch.Tensor  # mean -log(1 - D(fake)) over all fakes, detached


def gan_terms(real: torch.Tensor, fakes: list[torch.Tensor], objective) -> GanTerms:
    """The discriminator's loss on real logits and one or more sets of fake logits, and the generator's."""
    real_cost = _bce(real, 1.0)
    fake_cost = _bce(torch.cat(fakes), 0.0)
    if objective.discriminator_weighting == "sum":
        l_gan = real_cost + sum(_bce(f, 0.0) for f in fakes)
    else:
        l_gan = 0.5 * (real_cost + fake_cost)
    if objective.generator_loss == "minimax":
        l_gen = -l_gan
    elif objective.discriminator_weighting == "sum":
        l_gen = sum(_bce(f, 1.0) for f in fakes)
    else:
        l_gen = 0.5 * _bce(torch.cat(fakes), 1.0)
    return GanTerms(l_gan, l_gen, real_cost.detach(), fake_cost.detach())


def compute_losses(fwd: Forward, objective) -> Losses:
    """``objective`` is a :class:`vaegan_dist.config.ObjectiveConfig`."""
    logits = at_least_fp32(fwd.logits)
    real, recon, prior = fwd.parts(logits)
    f_real, f_recon, _ = fwd.parts(fwd.features)
    fakes = [prior, recon] if objective.fakes == "prior_and_reconstruction" else [prior]
    gan = gan_terms(real, fakes, objective)
    with torch.no_grad():
        d_real, d_recon, d_prior = (torch.sigmoid(t).mean() for t in (real, recon, prior))
    l_llike = kernels.feature_nll(f_recon, f_real.detach())
    l_pixel = None
    pixel_weight = objective.pixel_weight
    if pixel_weight > 0:  # a recipe option: the likelihood also in pixel space, where Dis_l starts out random
        recon = fwd.x_fake[: fwd.batch]
        l_pixel = kernels.feature_nll(recon.flatten(1), fwd.x.to(recon.dtype).flatten(1))
        l_llike = l_llike + pixel_weight * l_pixel
    return Losses(
        l_prior=fwd.kl.mean(),
        l_llike=l_llike,
        l_pixel=l_pixel,
        l_gan=gan.l_gan,
        l_gen=gan.l_gen,
        real_cost=gan.real_cost,
        fake_cost=gan.fake_cost,
        d_real=d_real,
        d_recon=d_recon,
        d_prior=d_prior,
    )


def decoder_gan_weight(objective) -> float:
    return 1.0 if objective.decoder_gan_weight == "one" else 1.0 - objective.gamma
