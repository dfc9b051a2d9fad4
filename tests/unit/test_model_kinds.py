"""The baselines of the paper's comparison: which networks each kind has, and which loss reaches which
network, checked against an independent autograd computation of the kind's rules."""

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F

from vaegan_dist.config import ObjectiveConfig
from vaegan_dist.errors import CheckpointError
from vaegan_dist.model import VAEGAN
from vaegan_dist.objectives import KINDS, model_kind


def _model(kind: str) -> VAEGAN:
    torch.manual_seed(0)
    return VAEGAN(32, latent_dim=6, encoder_fc=16, discriminator_fc=8, width=0.125, kind=kind)


def _inputs():
    g = torch.Generator().manual_seed(1)
    return torch.rand(4, 3, 32, 32, generator=g) * 2 - 1, torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)


def _run(model: VAEGAN, objective: ObjectiveConfig):
    x, eps, z_p = _inputs()
    outcome = model_kind(model.kind).forward_backward(model.networks(), x, eps, z_p, objective, contextlib.nullcontext)
    return outcome, {n: [p.grad for p in net.parameters()] for n, net in model.networks().items()}


def _assert_grads(model: VAEGAN, got: dict, expected: dict) -> None:
    assert set(got) == set(expected)
    for name, grads in expected.items():
        for (pname, _), g, e in zip(getattr(model, name).named_parameters(), got[name], grads):
            assert g is not None, f"{name}.{pname} got no gradient"
            torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-6, msg=f"{name}.{pname}")


@pytest.mark.parametrize("kind, has", [("vaegan", {"encoder", "decoder", "discriminator"}),
                                       ("vae", {"encoder", "decoder"}),
                                       ("vae_disl", {"encoder", "decoder", "discriminator"}),
                                       ("gan", {"decoder", "discriminator"})])
def test_each_kind_has_exactly_its_networks_and_nothing_else_is_saved(kind, has):
    model = _model(kind)
    assert set(model.networks()) == has == set(KINDS[kind].networks)
    prefixes = {key.split(".")[0] for key in model.state_dict()}
    assert prefixes == has  # a missing network has no weights in the checkpoint


def test_vae_has_no_discriminator_and_trains_on_the_pixel_gaussian_nll():
    model = _model("vae")
    ref = copy.deepcopy(model)
    x, eps, z_p = _inputs()
    mu, logvar = ref.encoder(x)
    x_rec = ref.decoder(mu + eps * torch.exp(0.5 * logvar))
    l_prior = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
    l_pixel = (0.5 * (x_rec - x).pow(2).flatten(1).sum(1)).mean()
    total = l_prior + l_pixel
    expected = {n: torch.autograd.grad(total, list(getattr(ref, n).parameters()), retain_graph=True)
                for n in ("encoder", "decoder")}
    outcome, got = _run(model, ObjectiveConfig(gamma=0.3))
    assert model.discriminator is None and outcome.gan_costs is None
    _assert_grads(model, got, expected)
    assert outcome.metrics["loss/l_llike"].item() == pytest.approx(l_pixel.item(), rel=1e-5)
    # objective.kl_weight weighs the KL in the VAE's loss too (the same forward, a different gradient)
    model = _model("vae")
    ref = copy.deepcopy(model)
    mu, logvar = ref.encoder(x)
    x_rec = ref.decoder(mu + eps * torch.exp(0.5 * logvar))
    total = 0.5 * (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean() \
        + (0.5 * (x_rec - x).pow(2).flatten(1).sum(1)).mean()
    expected = {n: torch.autograd.grad(total, list(getattr(ref, n).parameters()), retain_graph=True)
                for n in ("encoder", "decoder")}
    _, got = _run(model, ObjectiveConfig(gamma=0.3, kl_weight=0.5))
    _assert_grads(model, got, expected)


@pytest.mark.parametrize("objective", [ObjectiveConfig(gamma=0.3),
                                       ObjectiveConfig(gamma=0.1, generator_loss="non_saturating",
                                                       discriminator_weighting="half", fakes="prior")],
                         ids=["paper", "code_non_saturating"])
def test_vae_disl_decoder_gets_llike_alone_and_the_discriminator_still_plays_the_gan(objective):
    model = _model("vae_disl")
    ref = copy.deepcopy(model)
    x, eps, z_p = _inputs()
    mu, logvar = ref.encoder(x)
    x_fake = ref.decoder(torch.cat([mu + eps * torch.exp(0.5 * logvar), z_p]))
    logits, feats = ref.discriminator(torch.cat([x, x_fake]))
    real, recon, prior = logits[:4], logits[4:8], logits[8:]
    l_prior = (-0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)).mean()
    l_llike = (0.5 * (feats[4:8] - feats[:4].detach()).pow(2).sum(1)).mean()
    bce = F.binary_cross_entropy_with_logits
    fakes = torch.cat([prior, recon] if objective.fakes == "prior_and_reconstruction" else [prior])
    if objective.discriminator_weighting == "sum":
        l_gan = bce(real, torch.ones(4)) + sum(bce(f, torch.zeros_like(f)) for f in fakes.split(4))
    else:
        l_gan = 0.5 * (bce(real, torch.ones(4)) + bce(fakes, torch.zeros_like(fakes)))
    expected = {
        "encoder": torch.autograd.grad(l_prior + l_llike, list(ref.encoder.parameters()), retain_graph=True),
        "decoder": torch.autograd.grad(l_llike, list(ref.decoder.parameters()), retain_graph=True),  # no GAN term
        "discriminator": torch.autograd.grad(l_gan, list(ref.discriminator.parameters())),
    }
    _, got = _run(model, objective)
    _assert_grads(model, got, expected)


def test_vae_disl_decoder_gradient_does_not_change_with_the_gan_loss_but_vaegan_does():
    """Scale the discriminator's logits (so every GAN term changes): vae_disl's decoder must not notice."""
    objective = ObjectiveConfig(gamma=0.5)

    def decoder_grads(kind, logit_scale):
        model = _model(kind)
        last = [m for m in model.discriminator.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():
            last.weight.mul_(logit_scale)
            if last.bias is not None:
                last.bias.mul_(logit_scale)
        _, got = _run(model, objective)
        return got["decoder"]

    for a, b in zip(decoder_grads("vae_disl", 1.0), decoder_grads("vae_disl", 3.0)):
        torch.testing.assert_close(a, b)
    assert any(not torch.allclose(a, b) for a, b in zip(decoder_grads("vaegan", 1.0), decoder_grads("vaegan", 3.0)))


@pytest.mark.parametrize("objective", [ObjectiveConfig(), ObjectiveConfig(generator_loss="non_saturating"),
                                       ObjectiveConfig(discriminator_weighting="half")],
                         ids=["minimax_sum", "non_saturating", "minimax_half"])
def test_gan_has_no_encoder_and_its_decoder_plays_against_the_discriminator_from_the_prior(objective):
    model = _model("gan")
    ref = copy.deepcopy(model)
    x, _, z_p = _inputs()
    x_p = ref.decoder(z_p)
    logits, _ = ref.discriminator(torch.cat([x, x_p]))
    real, prior = logits[:4], logits[4:]
    bce = F.binary_cross_entropy_with_logits
    if objective.discriminator_weighting == "sum":
        l_gan = bce(real, torch.ones(4)) + bce(prior, torch.zeros(4))
        l_gen = -l_gan if objective.generator_loss == "minimax" else bce(prior, torch.ones(4))
    else:  # 0.5/0.5 weighting, undone on the decoder's side (x2) as for the VAE/GAN
        l_gan = 0.5 * (bce(real, torch.ones(4)) + bce(prior, torch.zeros(4)))
        l_gen = -2 * l_gan
    expected = {"decoder": torch.autograd.grad(l_gen, list(ref.decoder.parameters()), retain_graph=True),
                "discriminator": torch.autograd.grad(l_gan, list(ref.discriminator.parameters()))}
    outcome, got = _run(model, objective)
    assert model.encoder is None and outcome.gan_costs is not None
    _assert_grads(model, got, expected)


def test_a_gan_cannot_reconstruct_and_says_so_in_one_line():
    model = _model("gan").eval()
    assert model.sample(2).shape == (2, 3, 32, 32)
    with pytest.raises(CheckpointError, match="'gan' model: it has no encoder") as err:
        model.reconstruct(torch.zeros(2, 3, 32, 32))
    assert "\n" not in str(err.value)


def test_the_equilibrium_trick_never_pauses_the_vae_disl_decoder():
    """Its decoder gets no GAN gradient, so the GAN balance has no say over its step; vaegan's is paused."""
    from vaegan_dist.config import build_config
    from vaegan_dist.train.optim import build_optimizers
    from vaegan_dist.train.runtime import runtime_for
    from vaegan_dist.train.step import TrainStep

    skipped = {}
    for kind in ("vae_disl", "vaegan"):
        cfg = build_config("smoke", [f"model.kind={kind}", "objective.equilibrium=true",
                                     "objective.equilibrium_value=0.05", "objective.equilibrium_margin=0.01"])
        model = _model(kind)
        cfg.model.latent_dim = 6
        step = TrainStep(model.networks(), build_optimizers(model, cfg.optim), cfg,
                         runtime_for(False, precision="fp32"),
                         noise_seed=0, kind=model_kind(kind))
        metrics = step(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8), 0)
        skipped[kind] = metrics["equilibrium/decoder_skipped"].item()
    assert skipped == {"vae_disl": 0.0, "vaegan": 1.0}  # costs far above 0.05 + 0.01: a playing decoder pauses
