"""The fused Triton kernels against their PyTorch references, run on the CPU by Triton's interpreter
(TRITON_INTERPRET=1 is set in conftest.py before triton is imported)."""

import os

import pytest
import torch

import vaegan_kernels as kernels
from vaegan_kernels import use_backend
from vaegan_kernels.dispatch import use_triton

pytestmark = pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available(),
                                reason="needs the Triton interpreter or a GPU")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TOLERANCES = {torch.float32: dict(rtol=1e-5, atol=1e-5), torch.float16: dict(rtol=2e-3, atol=2e-3),
              torch.bfloat16: dict(rtol=1.6e-2, atol=1.6e-2)}


def latent_inputs(shape, dtype, seed):
    """mu ~ N(0, 1) and logvar ~ N(0, 1/4) in ``dtype``, both requiring grad."""
    torch.manual_seed(seed)
    mu = torch.randn(shape, dtype=dtype, device=DEVICE, requires_grad=True)
    logvar = (torch.randn(shape, device=DEVICE) * 0.5).to(dtype).requires_grad_(True)
    return mu, logvar


def both_paths(fn, *inputs):
    """Run ``fn`` under each backend on fresh leaf copies; returns [(outputs, grads)] for triton, reference."""
    results = []
    for backend in ("triton", "reference"):
        leaves = [x.detach().clone().requires_grad_(x.requires_grad) for x in inputs]
        with use_backend(backend):
            out = fn(*leaves)
        grads = torch.autograd.grad(out, [x for x in leaves if x.requires_grad], allow_unused=True)
        results.append((out.detach() if isinstance(out, torch.Tensor) else out, grads))
    return results


@pytest.mark.parametrize("shape", [(1, 1), (3, 17), (4, 2048), (5, 3000), (2, 256, 8, 8)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_feature_nll_matches_reference(shape, dtype, reduction):
    torch.manual_seed(0)
    f_rec = torch.randn(shape, dtype=dtype, device=DEVICE, requires_grad=True)
    f_target = torch.randn(shape, dtype=dtype, device=DEVICE)
    weights = torch.rand(shape[0], device=DEVICE) + 0.5  # grad_output != 1, different per row

    def loss(a, b):
        out = kernels.feature_nll(a, b, reduction)
        return (out * weights).sum() if reduction == "none" else out * 1.7

    (tri, (g_tri,)), (ref, (g_ref,)) = both_paths(loss, f_rec, f_target)
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(tri, ref, rtol=max(tol["rtol"], 1e-5), atol=1e-4 * ref.abs().max().item() + 1e-5)
    assert g_tri.dtype == dtype and g_tri.shape == f_rec.shape
    torch.testing.assert_close(g_tri.float(), g_ref.float(), **tol)


def test_feature_nll_gradient_to_a_target_that_requires_it():
    a = torch.randn(3, 50, device=DEVICE, requires_grad=True)
    b = torch.randn(3, 50, device=DEVICE, requires_grad=True)
    (tri, grads_tri), (ref, grads_ref) = both_paths(lambda x, y: kernels.feature_nll(x, y, "sum") * 0.3, a, b)
    for g_tri, g_ref in zip(grads_tri, grads_ref):
        torch.testing.assert_close(g_tri, g_ref)


def test_feature_nll_non_contiguous_inputs():
    torch.manual_seed(1)
    big = torch.randn(6, 2, 700, device=DEVICE)
    f_rec = big[::2, 1].clone().requires_grad_(True)
    f_target = big[1::2, 0]  # a strided view: rows 1400 elements apart
    assert not f_target.is_contiguous()
    maps = torch.randn(3, 16, 4, 4, device=DEVICE).contiguous(memory_format=torch.channels_last)
    columns = torch.randn(700, 3, device=DEVICE).t()  # column stride 3: the kernel gets a contiguous copy
    for a, b in ((f_rec, f_target), (maps.clone().requires_grad_(True), maps.flip(0)), (f_rec, columns)):
        (tri, (g_tri,)), (ref, (g_ref,)) = both_paths(lambda x, y: kernels.feature_nll(x, y), a, b)
        torch.testing.assert_close(tri, ref)
        torch.testing.assert_close(g_tri, g_ref)


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (64, 128), (5, 200)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("uses", ["z_and_kl", "z_only", "kl_only"])
def test_reparameterize_kl_matches_reference(shape, dtype, uses):
    mu, logvar = latent_inputs(shape, dtype, seed=3)
    eps = torch.randn(shape, device=DEVICE)
    upstream = torch.randn(shape, device=DEVICE)

    def loss(m, lv, e):
        z, kl = kernels.reparameterize_kl(m, lv, e)
        terms = {"z_and_kl": (z.float() * upstream).sum() + 0.5 * kl.sum(),
                 "z_only": (z.float() * upstream).sum(),
                 "kl_only": (kl * torch.linspace(0, 1, shape[0], device=DEVICE)).sum()}
        return terms[uses]

    (tri, g_tri), (ref, g_ref) = both_paths(loss, mu, logvar, eps)
    # The reference forms z in the input dtype step by step; the kernel in fp32, rounding once.
    tol = TOLERANCES[dtype]
    torch.testing.assert_close(tri, ref, rtol=tol["rtol"], atol=tol["atol"] * max(1.0, ref.abs().item()))
    for a, b in zip(g_tri, g_ref):
        assert a.dtype == dtype
        torch.testing.assert_close(a.float(), b.float(), **TOLERANCES[dtype])
    with use_backend("triton"):
        z, kl = kernels.reparameterize_kl(mu, logvar, eps)
    assert z.dtype == dtype and kl.dtype == torch.float32


def test_gradcheck_in_fp64():
    torch.manual_seed(4)
    opts = dict(dtype=torch.float64, device=DEVICE, requires_grad=True)
    a, b = torch.randn(3, 37, **opts), torch.randn(3, 37, **opts)
    mu, logvar = torch.randn(4, 9, **opts), torch.randn(4, 9, **opts)
    eps = torch.randn(4, 9, dtype=torch.float64, device=DEVICE)
    with use_backend("triton"):
        for reduction in ("none", "sum", "mean"):
            assert torch.autograd.gradcheck(lambda x, y: kernels.feature_nll(x, y, reduction), (a, b))
        assert torch.autograd.gradcheck(lambda m, lv: kernels.reparameterize_kl(m, lv, eps), (mu, logvar))


def test_bad_input_is_a_clear_error_on_the_triton_path_too():
    with use_backend("triton"):
        with pytest.raises(ValueError, match="empty batch"):
            kernels.feature_nll(torch.zeros(0, 4, device=DEVICE), torch.zeros(0, 4, device=DEVICE))
        with pytest.raises(ValueError, match="mu has shape"):
            kernels.reparameterize_kl(torch.zeros(2, 3, device=DEVICE), torch.zeros(2, 4, device=DEVICE),
                                      torch.zeros(2, 3, device=DEVICE))


def test_dispatch_choice_and_override():
    cpu = torch.zeros(2, 2)
    with use_backend("auto"):
        assert use_triton(cpu) is False  # CPU tensors take the reference path
    with use_backend("reference"):
        assert use_triton(cpu) is False
    with use_backend("triton"):
        assert use_triton(cpu) is True  # the interpreter runs Triton on CPU tensors
    with pytest.raises(ValueError, match="backend 'fast'"):
        with use_backend("fast"):
            pass


def test_training_step_gives_the_same_losses_and_gradients_through_either_path():
    import copy

    from vaegan_dist.config import ObjectiveConfig
    from vaegan_dist.model import VAEGAN
    from vaegan_dist.objectives import compute_gradients, compute_losses, run_forward

    torch.manual_seed(5)
    model = VAEGAN(32, latent_dim=8, encoder_fc=16, discriminator_fc=8, width=0.125)
    x, eps, z_p = torch.rand(4, 3, 32, 32) * 2 - 1, torch.randn(4, 8), torch.randn(4, 8)
    objective = ObjectiveConfig(gamma=0.2)
    results = {}
    for backend in ("triton", "reference"):
        m = copy.deepcopy(model)
        with use_backend(backend):
            fwd = run_forward(m.encoder, m.decoder, m.discriminator, x, eps, z_p)
            losses = compute_losses(fwd, objective)
            compute_gradients(fwd, losses, m.encoder, m.decoder, m.discriminator, objective)
        results[backend] = (losses, [p.grad for p in m.parameters()])
    (l_tri, g_tri), (l_ref, g_ref) = results["triton"], results["reference"]
    for name in ("l_prior", "l_llike", "l_gan"):
        torch.testing.assert_close(getattr(l_tri, name), getattr(l_ref, name), rtol=1e-5, atol=1e-5)
    for a, b in zip(g_tri, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
