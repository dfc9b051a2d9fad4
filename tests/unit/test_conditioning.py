"""Attribute-conditioned models (the paper's section 4.2): y reaches every network the kind has, through its
gradient, and nothing else changes; an unconditioned model is the same network as before."""

import contextlib

import pytest
import torch

from vaegan_dist.config import ObjectiveConfig
from vaegan_dist.data.manifest import DataError
from vaegan_dist.errors import CheckpointError
from vaegan_dist.evaluate.model_metrics import reorder_attributes
from vaegan_dist.model import VAEGAN
from vaegan_dist.objectives import model_kind

ATTRS = ("Eyeglasses", "Smiling", "Male")


def _model(kind: str, attributes=ATTRS) -> VAEGAN:
    torch.manual_seed(0)
    return VAEGAN(32, latent_dim=6, encoder_fc=16, discriminator_fc=8, width=0.125, kind=kind, attributes=attributes)


def _batch(n: int = 4):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, 32, 32, generator=g) * 2 - 1
    y = (torch.rand(n, len(ATTRS), generator=g) > 0.5).float()
    return x, torch.randn(n, 6, generator=g), torch.randn(n, 6, generator=g), y


@pytest.mark.parametrize("kind", ["vaegan", "vae", "vae_disl", "gan"])
def test_y_reaches_every_network_of_the_kind_through_its_gradient(kind):
    model = _model(kind)
    x, _, _, y = _batch()
    y = y.requires_grad_()
    outputs = {}
    if model.encoder is not None:
        outputs["encoder"] = sum(t.sum() for t in model.encoder(x, y))
    outputs["decoder"] = model.decoder(torch.randn(4, 6), y).sum()
    if model.discriminator is not None:
        outputs["discriminator"] = model.discriminator(x, y)[0].sum()
    assert set(outputs) == set(model.networks())
    for name, out in outputs.items():
        (g,) = torch.autograd.grad(out, y)
        assert g.abs().sum() > 0, f"y does not reach the {name}"


@pytest.mark.parametrize("kind", ["vaegan", "vae", "vae_disl", "gan"])
def test_every_networks_training_gradient_depends_on_y(kind):
    """One training step's gradients with the batch's attributes flipped differ for every network: the
    condition is used by every loss, not just accepted."""
    x, eps, z_p, y = _batch()
    grads = []
    for attrs in (y, 1 - y):
        model = _model(kind)
        model_kind(kind).forward_backward(model.networks(), x, eps, z_p, ObjectiveConfig(), contextlib.nullcontext,
                                          attrs)
        grads.append({n: torch.cat([p.grad.flatten() for p in net.parameters()])
                      for n, net in model.networks().items()})
    for name in grads[0]:
        assert not torch.allclose(grads[0][name], grads[1][name]), f"{name}'s gradient ignores y"


def test_dis_l_features_do_not_depend_on_y_but_the_logit_does():
    """y enters the discriminator after Dis_l: the learned similarity metric stays a function of the image."""
    model = _model("vaegan").eval()
    x, _, _, y = _batch()
    logits_a, feats_a = model.discriminator(x, y)
    logits_b, feats_b = model.discriminator(x, 1 - y)
    assert torch.equal(feats_a, feats_b)
    assert not torch.allclose(logits_a, logits_b)


def test_the_decoder_sees_y_as_plus_minus_one_beside_z():
    """Hand computation of the decoder's first layer: Linear(cat[z, 2y - 1]) (bias-free, BN follows)."""
    model = _model("vae").eval()
    z, y = torch.randn(2, 6), torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    linear = model.decoder.fc[0]
    expected = torch.cat([z, 2 * y - 1], 1) @ linear.weight.T
    got = {}
    handle = linear.register_forward_hook(lambda m, i, o: got.setdefault("out", o))
    model.decoder(z, y)
    handle.remove()
    torch.testing.assert_close(got["out"], expected)


def test_conditioned_and_unconditioned_models_refuse_the_wrong_call():
    conditioned, plain = _model("vaegan"), _model("vaegan", attributes=())
    x, _, _, y = _batch()
    with pytest.raises(CheckpointError, match="conditioned on 3 attributes"):
        conditioned.sample(4)
    with pytest.raises(ValueError, match="expects attributes of shape"):
        conditioned.decoder(torch.randn(4, 6), y[:, :2])
    with pytest.raises(ValueError, match="not conditioned"):
        plain.decoder(torch.randn(4, 6), y)
    assert conditioned.sample(4, y=y).shape == (4, 3, 32, 32)
    assert plain.reconstruct(x).shape == x.shape


def test_an_unconditioned_model_has_the_same_weights_as_before_conditioning_existed():
    plain = _model("vaegan", attributes=())
    assert plain.decoder.fc[0].weight.shape[1] == 6
    assert plain.encoder.fc[0].weight.shape[1] == _model("vaegan").encoder.fc[0].weight.shape[1] - len(ATTRS)


def test_reorder_attributes_picks_columns_by_name_and_names_what_is_missing():
    values = torch.tensor([[1, 0, 1], [0, 1, 1]])
    got = reorder_attributes(values, ["A", "B", "C"], ["C", "A"], "here")
    assert got.tolist() == [[1, 1], [1, 0]]
    with pytest.raises(DataError, match="here lacks attributes the model needs: D"):
        reorder_attributes(values, ["A", "B", "C"], ["A", "D"], "here")
