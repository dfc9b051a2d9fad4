"""Loss values against hand computations, and gradient routing against autograd expectations built
independently here, one loss and one network at a time."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from vaegan_dist.config import ObjectiveConfig
from vaegan_dist.model import VAEGAN
from vaegan_dist.objectives import (
    Forward,
    GanPhase,
    compute_gradients,
    compute_losses,
    equilibrium_updates,
    r1_penalty,
    run_forward,
)
from vaegan_dist.objectives.recipe import GAME_ON, r1_term


def _forward_with(logits, features, mu=None, logvar=None):
    b = logits.shape[0] // 3
    mu = torch.zeros(b, 2) if mu is None else mu
    logvar = torch.zeros(b, 2) if logvar is None else logvar
    kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)
    return Forward(mu, logvar, mu, kl, torch.zeros(2 * b, 3, 2, 2), logits, features)


def test_loss_values_by_hand():
    # B = 2. Real logits 0 -> D = 1/2; reconstructions logit ln 3 -> D = 3/4; prior samples logit -ln 3 -> D = 1/4.
    logits = torch.tensor([0.0, 0.0, math.log(3), math.log(3), -math.log(3), -math.log(3)])
    features = torch.zeros(6, 4)
    features[2:4] = 1.0  # reconstructions' features differ from the data's by 1 in each of 4 dims
    fwd = _forward_with(logits, features, mu=torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    losses = compute_losses(fwd, ObjectiveConfig(fakes="prior_and_reconstruction", discriminator_weighting="sum"))
    real, fake_recon, fake_prior = -math.log(0.5), -math.log(1 - 0.75), -math.log(1 - 0.25)
    assert losses.l_gan.item() == pytest.approx(real + fake_recon + fake_prior)
    assert losses.l_gen.item() == pytest.approx(-(real + fake_recon + fake_prior))  # minimax
    assert losses.l_llike.item() == pytest.approx(0.5 * 4)
    assert losses.l_prior.item() == pytest.approx((0.5 + 0.0) / 2)  # KL 0.5 for mu=(1,0), 0 for mu=0
    assert losses.real_cost.item() == pytest.approx(real)
    assert losses.fake_cost.item() == pytest.approx((fake_recon + fake_prior) / 2)
    assert (losses.d_real.item(), losses.d_recon.item(), losses.d_prior.item()) == pytest.approx((0.5, 0.75, 0.25))

    code = compute_losses(fwd, ObjectiveConfig(fakes="prior", discriminator_weighting="half",
                                               generator_loss="non_saturating"))
    assert code.l_gan.item() == pytest.approx(0.5 * (real + fake_prior))
    assert code.l_gen.item() == pytest.approx(0.5 * -math.log(0.25))  # -log D(x_p), weighted 1/2
    assert code.fake_cost.item() == pytest.approx(fake_prior)


def _reference_losses(ref, x, eps, z_p, objective):
    """An independent forward and the paper's losses written out with plain torch ops: (l_prior, l_llike, l_gan,
    the decoder's GAN loss with its weight)."""
    mu, logvar = ref.encoder(x)
    z = mu + eps * torch.exp(0.5 * logvar)
    x_fake = ref.decoder(torch.cat([z, z_p]))
    logits, feats = ref.discriminator(torch.cat([x, x_fake]))
    real, recon, prior = logits[:4], logits[4:8], logits[8:]
    l_prior = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
    l_llike = (0.5 * (feats[4:8] - feats[:4].detach()).pow(2).sum(1)).mean()
    bce = F.binary_cross_entropy_with_logits
    fakes = [prior, recon] if objective.fakes == "prior_and_reconstruction" else [prior]
    if objective.discriminator_weighting == "sum":
        l_gan = bce(real, torch.ones_like(real)) + sum(bce(f, torch.zeros_like(f)) for f in fakes)
    else:
        fk = torch.cat(fakes)
        l_gan = 0.5 * (bce(real, torch.ones_like(real)) + bce(fk, torch.zeros_like(fk)))
    # The decoder's GAN loss as the released code computes it (model/aegan.py): a sum over images with
    # weights 0.5 (real) and gen_weight = 0.5 * B / n_fakes (fakes), whose gradient at the discriminator's
    # input is then scaled by 1 / gen_weight (ScaleGradient(dis_weights_inv)); our losses are divided by B.
    # The real term stays in: through batch norm, Dis's output on real images depends on the fakes too.
    if objective.discriminator_weighting == "sum":
        l_gen = -l_gan if objective.generator_loss == "minimax" else sum(bce(f, torch.ones_like(f)) for f in fakes)
    else:
        fk = torch.cat(fakes)
        gen_weight = 0.5 * 4 / len(fk)
        per_image = F.binary_cross_entropy_with_logits
        if objective.generator_loss == "minimax":
            released = 0.5 * per_image(real, torch.ones_like(real), reduction="sum") + gen_weight * per_image(
                fk, torch.zeros_like(fk), reduction="sum")
            l_gen = -released / gen_weight / 4
        else:
            l_gen = gen_weight * per_image(fk, torch.ones_like(fk), reduction="sum") / gen_weight / 4
    w = 1.0 if objective.decoder_gan_weight == "one" else 1.0 - objective.gamma
    return l_prior, l_llike, l_gan, w * l_gen


def _expected_gradients(ref, encoder, decoder, discriminator):
    """Each network's gradient from the loss the rules give it, by plain autograd on the reference model."""
    losses = {"encoder": encoder, "decoder": decoder, "discriminator": discriminator}
    return {name: torch.autograd.grad(loss, list(getattr(ref, name).parameters()), retain_graph=True)
            for name, loss in losses.items()}


def _setup(seed=0, dtype=torch.float32):
    """The recipe tests run in float64: the adaptive weight (~20) scales float32 rounding past any fair atol."""
    torch.manual_seed(seed)
    model = VAEGAN(32, latent_dim=6, encoder_fc=16, discriminator_fc=8, width=0.125).to(dtype)
    return model, *(t.to(dtype) for t in (torch.rand(4, 3, 32, 32) * 2 - 1, torch.randn(4, 6), torch.randn(4, 6)))


def _assert_routed(model, x, eps, z_p, objective, expected, phase=GAME_ON, dis_extra=None):
    fwd = run_forward(model.encoder, model.decoder, model.discriminator, x, eps, z_p)
    metrics = compute_gradients(fwd, compute_losses(fwd, objective), model.encoder, model.decoder,
                                model.discriminator, objective, phase=phase, dis_extra=dis_extra)
    for name, grads in expected.items():
        for (pname, p), g in zip(getattr(model, name).named_parameters(), grads):
            assert p.grad is not None, f"{name}.{pname} got no gradient"
            torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6, msg=f"{name}.{pname}")
    return metrics


@pytest.mark.parametrize("objective", [
    ObjectiveConfig(gamma=0.3),
    ObjectiveConfig(gamma=0.1, generator_loss="non_saturating"),
    ObjectiveConfig(gamma=1e-2, fakes="prior", decoder_gan_weight="one_minus_gamma", discriminator_weighting="half"),
    ObjectiveConfig(gamma=0.2, generator_loss="non_saturating", discriminator_weighting="half"),
    ObjectiveConfig(gamma=0.2, discriminator_weighting="half"),
], ids=["paper", "non_saturating", "code", "non_saturating_half", "half_both_fakes"])
def test_gradient_routing_matches_autograd_one_network_at_a_time(objective):
    model, x, eps, z_p = _setup()
    ref = copy.deepcopy(model)
    l_prior, l_llike, l_gan, l_gen = _reference_losses(ref, x, eps, z_p, objective)
    expected = _expected_gradients(ref, encoder=l_prior + l_llike,
                                   decoder=objective.gamma * l_llike + l_gen,
                                   discriminator=l_gan)
    _assert_routed(model, x, eps, z_p, objective, expected)


@pytest.mark.parametrize("objective", [
    ObjectiveConfig(adaptive_gamma=True, adaptive_weight=0.8),
    ObjectiveConfig(adaptive_gamma=True, generator_loss="non_saturating", discriminator_weighting="half",
                    fakes="prior"),
], ids=["minimax", "non_saturating_code"])
def test_adaptive_gamma_routes_llike_plus_the_ratio_of_norms_at_the_last_layer(objective):
    """taming-transformers' rule, written out: lambda = ||dL_llike/dW|| / (||dL_gen/dW|| + 1e-4) at the
    decoder's to-RGB weight W; Dec <- L_llike + a * lambda * L_gen; encoder and discriminator unchanged."""
    model, x, eps, z_p = _setup(dtype=torch.float64)
    ref = copy.deepcopy(model)
    l_prior, l_llike, l_gan, l_gen = _reference_losses(ref, x, eps, z_p, objective)
    last = ref.decoder.to_rgb.weight
    (g_llike,) = torch.autograd.grad(l_llike, last, retain_graph=True)
    (g_gen,) = torch.autograd.grad(l_gen, last, retain_graph=True)
    lam = (g_llike.norm() / (g_gen.norm() + 1e-4)).clamp(0, 1e4).detach()
    expected = _expected_gradients(ref, encoder=l_prior + l_llike,
                                   decoder=l_llike + objective.adaptive_weight * lam * l_gen,
                                   discriminator=l_gan)
    metrics = _assert_routed(model, x, eps, z_p, objective, expected)
    torch.testing.assert_close(metrics["objective/adaptive_gan_weight"], lam)
    assert 1e-3 < lam.item() < 1e3  # a real ratio, not the clamp


@pytest.mark.parametrize("adaptive", [False, True])
def test_the_warm_up_gives_the_decoder_llike_alone(adaptive):
    """Before objective.gan_start: Dec <- gamma * L_llike (L_llike with the adaptive gamma), Enc as always; the
    discriminator's gradient is still L_GAN's (the step does not apply it; tested in test_train_step)."""
    objective = ObjectiveConfig(gamma=0.3, gan_start=5, adaptive_gamma=adaptive)
    model, x, eps, z_p = _setup(dtype=torch.float64)
    ref = copy.deepcopy(model)
    l_prior, l_llike, l_gan, _ = _reference_losses(ref, x, eps, z_p, objective)
    expected = _expected_gradients(ref, encoder=l_prior + l_llike,
                                   decoder=(1.0 if adaptive else objective.gamma) * l_llike,
                                   discriminator=l_gan)
    assert GanPhase.at(4, objective) == GanPhase(gan_on=False) and GanPhase.at(5, objective).gan_on
    metrics = _assert_routed(model, x, eps, z_p, objective, expected, phase=GanPhase.at(4, objective))
    assert metrics == {}  # no adaptive weight without a GAN term


def test_the_pixel_term_joins_llike_for_the_encoder_and_the_decoder():
    """objective.pixel_weight: L_llike + w * 1/2 ||x~ - x||^2 wherever L_llike goes (Enc at 1, Dec at gamma)."""
    objective = ObjectiveConfig(gamma=0.3, pixel_weight=0.7)
    model, x, eps, z_p = _setup(dtype=torch.float64)
    ref = copy.deepcopy(model)
    l_prior, l_llike, l_gan, l_gen = _reference_losses(ref, x, eps, z_p, objective)
    mu, logvar = ref.encoder(x)
    recon = ref.decoder(torch.cat([mu + eps * torch.exp(0.5 * logvar), z_p]))[:4]
    l_pixel = (0.5 * (recon - x).pow(2).sum(dim=(1, 2, 3))).mean()
    l_rec = l_llike + 0.7 * l_pixel
    expected = _expected_gradients(ref, encoder=l_prior + l_rec,
                                   decoder=objective.gamma * l_rec + l_gen,
                                   discriminator=l_gan)
    _assert_routed(model, x, eps, z_p, objective, expected)


def test_the_kl_weight_scales_l_prior_in_the_encoder_and_nothing_else():
    """objective.kl_weight: Enc <- w * L_prior + L_llike; the decoder's and the discriminator's gradients as without
    it (the decoder samples from the same N(0, I) prior)."""
    objective = ObjectiveConfig(gamma=0.3, kl_weight=0.25)
    model, x, eps, z_p = _setup(dtype=torch.float64)
    ref = copy.deepcopy(model)
    l_prior, l_llike, l_gan, l_gen = _reference_losses(ref, x, eps, z_p, objective)
    expected = _expected_gradients(ref, encoder=0.25 * l_prior + l_llike,
                                   decoder=objective.gamma * l_llike + l_gen,
                                   discriminator=l_gan)
    _assert_routed(model, x, eps, z_p, objective, expected)


def test_r1_joins_the_discriminator_loss_and_nothing_else():
    """Dis <- L_GAN + k * r1_gamma / 2 * E||grad_x D(x)||^2 (a double backward through an independent forward on
    the real images); encoder and decoder gradients as without it."""
    objective = ObjectiveConfig(gamma=0.3, r1_gamma=2.0, r1_every=4)
    model, x, eps, z_p = _setup(dtype=torch.float64)
    ref = copy.deepcopy(model)
    l_prior, l_llike, l_gan, l_gen = _reference_losses(ref, x, eps, z_p, objective)
    real = x.clone().requires_grad_(True)
    (grad_x,) = torch.autograd.grad(ref.discriminator(real)[0].sum(), real, create_graph=True)
    penalty = grad_x.pow(2).sum(dim=(1, 2, 3)).mean()
    expected = _expected_gradients(ref, encoder=l_prior + l_llike,
                                   decoder=objective.gamma * l_llike + l_gen,
                                   discriminator=l_gan + 4 * 2.0 / 2 * penalty)
    phases = [GanPhase.at(step, objective) for step in range(9)]
    assert [p.r1_now for p in phases] == [True, False, False, False, True, False, False, False, True]
    term = r1_term(model.discriminator, x, None, objective)
    _assert_routed(model, x, eps, z_p, objective, expected, phase=phases[0], dis_extra=term)


def test_r1_penalty_of_a_linear_discriminator_by_hand():
    """D(x) = <w, x>: grad_x D = w for every image, so the penalty is ||w||^2 and its gradient in w is 2w."""

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(1, 3, 4, 4))

        def forward(self, x, y=None):
            return (x * self.w).sum(dim=(1, 2, 3)), None

    d = Linear()
    penalty = r1_penalty(d, torch.randn(5, 3, 4, 4))
    torch.testing.assert_close(penalty, d.w.detach().pow(2).sum())
    (g,) = torch.autograd.grad(penalty, d.w)
    torch.testing.assert_close(g, 2 * d.w.detach())


def test_llike_does_not_reach_the_discriminator_and_gan_does_not_reach_the_encoder():
    """With the GAN loss switched off by hand, Dis must get exactly zero from L_llike, and the encoder's
    gradient must not change when only the GAN loss changes."""
    torch.manual_seed(1)
    model = VAEGAN(32, latent_dim=6, encoder_fc=16, discriminator_fc=8, width=0.125)
    x, eps, z_p = torch.rand(4, 3, 32, 32) * 2 - 1, torch.randn(4, 6), torch.randn(4, 6)
    objective = ObjectiveConfig(gamma=0.5)

    def grads(gan_scale):
        m = copy.deepcopy(model)
        fwd = run_forward(m.encoder, m.decoder, m.discriminator, x, eps, z_p)
        losses = compute_losses(fwd, objective)
        losses.l_gan = losses.l_gan * gan_scale
        losses.l_gen = losses.l_gen * gan_scale
        compute_gradients(fwd, losses, m.encoder, m.decoder, m.discriminator, objective)
        return {n: [p.grad.clone() for p in getattr(m, n).parameters()]
                for n in ("encoder", "decoder", "discriminator")}

    no_gan, gan = grads(0.0), grads(1.0)
    assert all(torch.count_nonzero(g) == 0 for g in no_gan["discriminator"])
    for a, b in zip(no_gan["encoder"], gan["encoder"]):
        torch.testing.assert_close(a, b)
    assert any(not torch.allclose(a, b) for a, b in zip(no_gan["decoder"], gan["decoder"]))


@pytest.mark.parametrize("real, fake, expected", [
    (0.6, 0.7, (True, True)),  # both near equilibrium 0.68
    (0.2, 0.7, (True, False)),  # Dis too good on reals -> Dis pauses
    (0.7, 1.2, (False, True)),  # fake cost above 0.68 + 0.35: the decoder is losing -> Dec pauses
    (0.2, 1.2, (True, True)),  # both would pause -> both run
])
def test_equilibrium_rule(real, fake, expected):
    decoder, discriminator = equilibrium_updates(torch.tensor(real), torch.tensor(fake), 0.68, 0.35)
    assert decoder.dtype == discriminator.dtype == torch.bool and decoder.dim() == 0  # decided on the device
    assert (bool(decoder), bool(discriminator)) == expected
