"""Which loss trains which network, computed with as few passes over the graph as the rules allow.

    Enc <- L_prior + L_llike
    Dec <- gamma * L_llike + w * L_gen          (L_gen = -L_GAN for the paper's minimax game)
    Dis <- L_GAN
L_llike must not train Dis and the GAN loss must not reach Enc. Every gradient is computed before any
optimiser step: stepping one network first would change weights a later backward pass still needs.

One forward pass feeds three backward passes, each restricted with ``inputs=`` so that autograd prunes
the rest of the graph, and each filling the gradients of exactly one network (so DDP's all-reduce for
that network fires once per step on every rank):
  1. L_GAN -> Dis parameters and, for the minimax game, dL_GAN/dx_fake (one full Dis backward);
     (non-saturating only: L_gen -> x_fake, input gradients through all of Dis);
  2. L_prior + L_llike -> Enc parameters, and g_llike = dL_llike/dx_fake on the way (input gradients
     through Dis up to layer l and through Dec, weight gradients only in Enc);
  3. x_fake -> Dec parameters with upstream gamma * g_llike + w * s * g_gen.

s undoes the discriminator's real/fake weighting on the decoder's side, as the released code does
(``ScaleGradient(dis_weights_inv)`` at the discriminator's input, model/aegan.py): with the 0.5/0.5
weighting the decoder still gets the unweighted GAN gradient, so gamma means the same under both.
"""

from __future__ import annotations

import torch
from torch import nn

from vaegan_dist.objectives.losses import Forward, Losses, decoder_gan_weight
from vaegan_dist.objectives.recipe import GAME_ON, GanPhase, adaptive_gan_weight, decoder_last_layer


def discriminator_weight_inverse(objective, fake_sets: int | None = None) -> float:
    """How much the released code's ``ScaleGradient(dis_weights_inv)`` scales the decoder's GAN gradient.

    Under the 0.5/0.5 weighting each fake image has weight 0.5 * B / n_fakes in its summed loss (B real
    images, n_fakes = B per set of fakes); our losses are those sums divided by B, so undoing the weight
    multiplies by 2 * n_fakes / B: 2 with Dec(z_p) only (the released code), 4 with the reconstructions too.
    ``fake_sets``: how many sets of B fakes the discriminator sees (default: from ``objective.fakes``; the
    plain GAN has only Dec(z_p), whatever ``objective.fakes`` says).
    """
    if objective.discriminator_weighting != "half":
        return 1.0
    if fake_sets is None:
        fake_sets = 2 if objective.fakes == "prior_and_reconstruction" else 1
    return 2.0 * fake_sets


def compute_gradients(fwd: Forward, losses: Losses, encoder: nn.Module, decoder: nn.Module,
                      discriminator: nn.Module, objective, decoder_gan: bool = True,
                      phase: GanPhase = GAME_ON, dis_extra: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Accumulate each network's gradient into its ``.grad`` per the update rules above; returns the recipe's
    detached metrics (the adaptive gamma's weight).

    ``decoder_gan=False`` is the paper's VAE_Dis_l: the discriminator still learns the GAN game (so Dis_l
    is a GAN discriminator's feature space), but the decoder steps on L_llike alone, at full weight.
    ``phase.gan_on=False`` is the warm-up: the decoder gets gamma * L_llike alone (the discriminator's gradient
    is still computed, so that DDP sees the same backward passes every step; the step does not apply it).
    ``dis_extra`` (the lazy R1 term) joins the discriminator's loss in its one backward pass."""
    x_fake = fwd.x_fake
    dis_params = [p for p in discriminator.parameters() if p.requires_grad]
    minimax = objective.generator_loss == "minimax"
    plays_gan, decoder_gan = decoder_gan, decoder_gan and phase.gan_on
    want_input_grad = decoder_gan and minimax

    # 1. Discriminator. For the minimax game the decoder's GAN gradient is -dL_GAN/dx_fake: free here.
    x_fake.grad = None
    l_dis = losses.l_gan if dis_extra is None else losses.l_gan + dis_extra
    torch.autograd.backward(l_dis, inputs=dis_params + ([x_fake] if want_input_grad else []), retain_graph=True)
    g_gen = None
    if want_input_grad:
        g_gen = -x_fake.grad
        x_fake.grad = None
    elif decoder_gan:
        (g_gen,) = torch.autograd.grad(losses.l_gen, x_fake, retain_graph=True)

    # 2. Encoder: L_prior directly (times objective.kl_weight), L_llike through Dec; the GAN loss never enters.
    #    L_llike's gradient at the decoder's output is collected on the way without touching Dis or Dec parameters.
    torch.autograd.backward(objective.kl_weight * losses.l_prior + losses.l_llike,
                            inputs=list(encoder.parameters()) + [x_fake], retain_graph=True)
    g_llike = x_fake.grad
    x_fake.grad = None

    # 3. Decoder parameters.
    metrics = {}
    adaptive = objective.adaptive_gamma
    if g_gen is None:
        # vae_disl: L_llike at full weight; the warm-up: L_llike at the weight it has in the game later on
        upstream = objective.gamma * g_llike if plays_gan and not adaptive else g_llike
    else:
        g_gen = decoder_gan_weight(objective) * discriminator_weight_inverse(objective) * g_gen
        if adaptive:  # Dec <- L_llike + a * lambda * L_gen: at the last layer the GAN gradient is a x L_llike's
            weight = adaptive_gan_weight(x_fake, g_llike, g_gen, decoder_last_layer(decoder))
            metrics["objective/adaptive_gan_weight"] = weight
            upstream = g_llike + objective.adaptive_weight * weight.to(g_gen.dtype) * g_gen
        else:
            upstream = objective.gamma * g_llike + g_gen
    torch.autograd.backward(x_fake, grad_tensors=upstream, inputs=list(decoder.parameters()))
    return metrics


def compute_generator_gradients(x_fake: torch.Tensor, l_gan: torch.Tensor, l_gen: torch.Tensor,
                                decoder: nn.Module, discriminator: nn.Module, objective,
                                dis_extra: torch.Tensor | None = None) -> None:
    """The plain GAN: Dis <- L_GAN (+ ``dis_extra``, the lazy R1 term), Dec <- its GAN loss, with the same
    weighting as the VAE/GAN's decoder (the released code's ``dis_weights_inv`` undone for Dec(z_p), the only
    fakes)."""
    dis_params = [p for p in discriminator.parameters() if p.requires_grad]
    minimax = objective.generator_loss == "minimax"
    x_fake.grad = None
    l_dis = l_gan if dis_extra is None else l_gan + dis_extra
    torch.autograd.backward(l_dis, inputs=dis_params + ([x_fake] if minimax else []), retain_graph=True)
    if minimax:
        g_gen = -x_fake.grad
        x_fake.grad = None
    else:
        (g_gen,) = torch.autograd.grad(l_gen, x_fake, retain_graph=True)
    inverse = discriminator_weight_inverse(objective, fake_sets=1)
    torch.autograd.backward(x_fake, grad_tensors=inverse * g_gen, inputs=list(decoder.parameters()))
