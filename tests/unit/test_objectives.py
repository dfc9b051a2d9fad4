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
    compute_gradients,
    compute_losses,
    equilibrium_updates,
    run_forward,
)


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


@pytest.mark.parametrize("objective", [
    ObjectiveConfig(gamma=0.3),
    ObjectiveConfig(gamma=0.1, generator_loss="non_saturating"),
    ObjectiveConfig(gamma=1e-2, fakes="prior", decoder_gan_weight="one_minus_gamma", discriminator_weighting="half"),
    ObjectiveConfig(gamma=0.2, generator_loss="non_saturating", discriminator_weighting="half"),
    ObjectiveConfig(gamma=0.2, discriminator_weighting="half"),
], ids=["paper", "non_saturating", "code", "non_saturating_half", "half_both_fakes"])
def test_gradient_routing_matches_autograd_one_network_at_a_time(objective):
    torch.manual_seed(0)
    model = VAEGAN(32, latent_dim=6, encoder_fc=16, discriminator_fc=8, width=0.125)
    x = torch.rand(4, 3, 32, 32) * 2 - 1
    eps, z_p = torch.randn(4, 6), torch.randn(4, 6)

    # Expected: an independent forward and the paper's rules written out with plain torch ops.
    ref = copy.deepcopy(model)
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
        l_gan = bce(real, torch.ones(4)) + sum(bce(f, torch.zeros(4)) for f in fakes)
    else:
        fk = torch.cat(fakes)
        l_gan = 0.5 * (bce(real, torch.ones(4)) + bce(fk, torch.zeros_like(fk)))
    # The decoder's GAN loss as the released code computes it (model/aegan.py): a sum over images with
    # weights 0.5 (real) and gen_weight = 0.5 * B / n_fakes (fakes), whose gradient at the discriminator's
    # input is then scaled by 1 / gen_weight (ScaleGradient(dis_weights_inv)); our losses are divided by B.
    # The real term stays in: through batch norm, Dis's output on real images depends on the fakes too.
    if objective.discriminator_weighting == "sum":
        l_gen = -l_gan if objective.generator_loss == "minimax" else sum(bce(f, torch.ones(4)) for f in fakes)
    else:
        fk = torch.cat(fakes)
        gen_weight = 0.5 * 4 / len(fk)
        per_image = F.binary_cross_entropy_with_logits
        if objective.generator_loss == "minimax":
            released = 0.5 * per_image(real, torch.ones(4), reduction="sum") + gen_weight * per_image(
                fk, torch.zeros_like(fk), reduction="sum")
            l_gen = -released / gen_weight / 4
        else:
            l_gen = gen_weight * per_image(fk, torch.ones_like(fk), reduction="sum") / gen_weight / 4
    w = 1.0 if objective.decoder_gan_weight == "one" else 1.0 - objective.gamma
    expected = {
        "encoder": torch.autograd.grad(l_prior + l_llike, list(ref.encoder.parameters()), retain_graph=True),
        "decoder": torch.autograd.grad(objective.gamma * l_llike + w * l_gen, list(ref.decoder.parameters()),
                                       retain_graph=True),
        "discriminator": torch.autograd.grad(l_gan, list(ref.discriminator.parameters())),
    }

    fwd = run_forward(model.encoder, model.decoder, model.discriminator, x, eps, z_p)
    compute_gradients(fwd, compute_losses(fwd, objective), model.encoder, model.decoder, model.discriminator, objective)
    for name, grads in expected.items():
        for (pname, p), g in zip(getattr(model, name).named_parameters(), grads):
            assert p.grad is not None, f"{name}.{pname} got no gradient"
            torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6, msg=f"{name}.{pname}")


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
        return {n: [p.grad.clone() for p in getattr(m, n).parameters()] for n in ("encoder", "decoder", "discriminator")}

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
    assert equilibrium_updates(real, fake, 0.68, 0.35) == expected
