"""The loss ops against hand computations (their Triton paths: tests/unit/test_kernels_triton.py)."""

import math

import pytest
import torch

import vaegan_kernels as kernels


def test_feature_nll_by_hand():
    f_rec = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    f_target = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    # per sample: 1/2 (0 + 4 + 9) = 6.5 and 1/2 (1 + 1 + 1) = 1.5
    assert kernels.feature_nll(f_rec, f_target, "none").tolist() == [6.5, 1.5]
    assert kernels.feature_nll(f_rec, f_target, "sum").item() == 8.0
    assert kernels.feature_nll(f_rec, f_target).item() == 4.0


def test_feature_nll_flattens_feature_maps_and_only_grads_what_requires_it():
    f_rec = torch.zeros(2, 4, 2, 2, requires_grad=True)
    f_target = torch.ones(2, 4, 2, 2)
    loss = kernels.feature_nll(f_rec, f_target, "sum")
    assert loss.item() == 16.0  # 2 samples x 16 values x 1/2
    loss.backward()
    assert torch.equal(f_rec.grad, f_rec.detach() - f_target)  # d/df_rec 1/2 (f_rec - t)^2
    assert f_target.grad is None


def test_reparameterize_kl_by_hand():
    mu = torch.tensor([[0.5, -1.0], [0.0, 0.0]])
    logvar = torch.tensor([[math.log(4.0), 0.0], [math.log(2.0), 0.0]])
    eps = torch.tensor([[1.0, 2.0], [0.0, 0.0]])
    z, kl = kernels.reparameterize_kl(mu, logvar, eps)
    assert z[0].tolist() == pytest.approx([0.5 + 2.0, -1.0 + 2.0])  # sigma = exp(logvar / 2) = 2 and 1
    # KL = -1/2 sum(1 + logvar - mu^2 - exp(logvar)); sample 0: -1/2 ((1 + ln 4 - 0.25 - 4) + (1 + 0 - 1 - 1))
    # sample 1: -1/2 ((1 + ln 2 - 0 - 2) + (1 + 0 - 0 - 1)) = (1 - ln 2) / 2
    expected = [-0.5 * ((1 + math.log(4.0) - 0.25 - 4) + (1 - 1 - 1)), (1 - math.log(2.0)) / 2]
    assert kl.tolist() == pytest.approx(expected)


def test_bf16_inputs_accumulate_in_fp32():
    f = torch.full((1, 16384), 0.01, dtype=torch.bfloat16)
    loss = kernels.feature_nll(f, torch.zeros_like(f), "none")
    assert loss.dtype == torch.float32
    assert loss.item() == pytest.approx(0.5 * 16384 * float(f[0, 0]) ** 2, rel=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda: kernels.feature_nll(torch.zeros(2, 3), torch.zeros(2, 4)),
     "f_rec has shape (2, 3) but f_target has (2, 4)"),
    (lambda: kernels.feature_nll(torch.zeros(0, 3), torch.zeros(0, 3)), "empty batch"),
    (lambda: kernels.feature_nll(torch.zeros(2, 3), torch.zeros(2, 3), "avg"), "reduction='avg'"),
    (lambda: kernels.reparameterize_kl(torch.zeros(2, 3), torch.zeros(3, 3), torch.zeros(2, 3)),
     "mu has shape (2, 3) but logvar has (3, 3)"),
    (lambda: kernels.reparameterize_kl(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 2)), "eps has (2, 2)"),
])
def test_bad_input_is_a_clear_error(call, message):
    with pytest.raises(ValueError) as err:
        call()
    assert message in str(err.value)
