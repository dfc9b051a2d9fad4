"""The reparameterisation trick and the KL term together, because both read mu and logvar.

    std = exp(logvar / 2)        z = mu + eps * std
    KL(i) = -1/2 * sum_j (1 + logvar - mu^2 - std^2)

Backward, with upstream g_z [B, L] and g_kl [B]:
    d/dmu     = g_z + g_kl * mu
    d/dlogvar = g_z * (eps * std / 2) + g_kl * (std^2 - 1) / 2
The forward kernel (one program per row) reads mu, logvar and eps once, computes exp once, and writes z,
the KL and the two logvar factors; the backward kernel combines them with the upstream gradients.
"""

from __future__ import annotations

import torch

from vaegan_kernels._checks import check_pair
from vaegan_kernels._scale import TL_DTYPES, accumulation_dtype
from vaegan_kernels._triton import tl, triton
from vaegan_kernels.dispatch import use_triton

if triton is not None:

    @triton.jit
    def _reparameterize_kl_forward_kernel(
        mu_ptr,  # [B, L] contiguous
        logvar_ptr,  # [B, L] contiguous
        eps_ptr,  # [B, L] contiguous, standard normal noise
        z_ptr,  # [B, L] out: mu + eps * std, dtype of mu
        kl_ptr,  # [B] out, fp32
        dz_dlogvar_ptr,  # [B, L] out, fp32 (fp64 for fp64 inputs): eps * std / 2
        dkl_dlogvar_ptr,  # [B, L] out, same dtype: (std^2 - 1) / 2
        L,
        BLOCK: tl.constexpr,
        ACC: tl.constexpr,  # fp32, or fp64 for fp64 inputs
    ):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        mask = cols < L
        offs = row * L + cols
        mu = tl.load(mu_ptr + offs, mask=mask, other=0.0).to(ACC)
        logvar = tl.load(logvar_ptr + offs, mask=mask, other=0.0).to(ACC)
        eps = tl.load(eps_ptr + offs, mask=mask, other=0.0).to(ACC)
        std = tl.exp(0.5 * logvar)
        var = std * std
        tl.store(z_ptr + offs, (mu + eps * std).to(z_ptr.dtype.element_ty), mask=mask)
        tl.store(kl_ptr + row, -0.5 * tl.sum(tl.where(mask, 1.0 + logvar - mu * mu - var, 0.0), axis=0))
        tl.store(dz_dlogvar_ptr + offs, 0.5 * eps * std, mask=mask)
        tl.store(dkl_dlogvar_ptr + offs, 0.5 * (var - 1.0), mask=mask)

    @triton.jit
    def _reparameterize_kl_backward_kernel(
        grad_z_ptr,  # [B, L] contiguous upstream gradient of z (ignored unless HAS_GRAD_Z)
        grad_kl_ptr,  # [B] upstream gradient of the KL (ignored unless HAS_GRAD_KL)
        mu_ptr,  # [B, L] contiguous: dKL/dmu
        dz_dlogvar_ptr,  # [B, L] fp32 from forward
        dkl_dlogvar_ptr,  # [B, L] fp32 from forward
        grad_mu_ptr,  # [B, L] out, dtype of mu
        grad_logvar_ptr,  # [B, L] out, dtype of logvar
        L,
        HAS_GRAD_Z: tl.constexpr,
        HAS_GRAD_KL: tl.constexpr,
        BLOCK: tl.constexpr,
        ACC: tl.constexpr,
    ):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        mask = cols < L
        offs = row * L + cols
        grad_mu = tl.zeros((BLOCK,), dtype=ACC)
        grad_logvar = tl.zeros((BLOCK,), dtype=ACC)
        if HAS_GRAD_Z:
            gz = tl.load(grad_z_ptr + offs, mask=mask, other=0.0).to(ACC)
            grad_mu += gz
            grad_logvar += gz * tl.load(dz_dlogvar_ptr + offs, mask=mask, other=0.0)
        if HAS_GRAD_KL:
            gk = tl.load(grad_kl_ptr + row).to(ACC)
            grad_mu += gk * tl.load(mu_ptr + offs, mask=mask, other=0.0).to(ACC)
            grad_logvar += gk * tl.load(dkl_dlogvar_ptr + offs, mask=mask, other=0.0)
        tl.store(grad_mu_ptr + offs, grad_mu.to(grad_mu_ptr.dtype.element_ty), mask=mask)
        tl.store(grad_logvar_ptr + offs, grad_logvar.to(grad_logvar_ptr.dtype.element_ty), mask=mask)


class ReparameterizeKL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor):
        shape, logvar_dtype = mu.shape, logvar.dtype
        mu, logvar, eps = (t.reshape(t.shape[0], -1).contiguous() for t in (mu, logvar, eps))
        rows, latent = mu.shape
        z = torch.empty_like(mu)
        acc = accumulation_dtype(mu, logvar, eps)
        kl = torch.empty(rows, dtype=acc, device=mu.device)
        dz_dlogvar = torch.empty((rows, latent), dtype=acc, device=mu.device)
        dkl_dlogvar = torch.empty_like(dz_dlogvar)
        block = triton.next_power_of_2(latent)
        _reparameterize_kl_forward_kernel[(rows,)](mu, logvar, eps, z, kl, dz_dlogvar, dkl_dlogvar, latent,
                                                   BLOCK=block, ACC=TL_DTYPES[acc], num_warps=1)
        ctx.save_for_backward(mu, dz_dlogvar, dkl_dlogvar)
        ctx.shape, ctx.logvar_dtype, ctx.block, ctx.acc = shape, logvar_dtype, block, TL_DTYPES[acc]
        return z.view(shape), kl

    @staticmethod
    def backward(ctx, grad_z: torch.Tensor | None, grad_kl: torch.Tensor | None):
        mu, dz_dlogvar, dkl_dlogvar = ctx.saved_tensors
        rows, latent = mu.shape
        grad_mu = torch.empty_like(mu)
        grad_logvar = torch.empty((rows, latent), dtype=ctx.logvar_dtype, device=mu.device)
        gz = grad_z.reshape(rows, latent).contiguous() if grad_z is not None else mu
        gk = grad_kl.contiguous() if grad_kl is not None else dkl_dlogvar
        _reparameterize_kl_backward_kernel[(rows,)](gz, gk, mu, dz_dlogvar, dkl_dlogvar, grad_mu, grad_logvar, latent,
                                                    HAS_GRAD_Z=grad_z is not None, HAS_GRAD_KL=grad_kl is not None,
                                                    BLOCK=ctx.block, ACC=ctx.acc, num_warps=1)
        return grad_mu.view(ctx.shape), grad_logvar.view(ctx.shape), None


def kl_normal_reference(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample [B], summed over the latent, in fp32 (fp64 for fp64)."""
    acc = accumulation_dtype(mu, logvar)
    mu, logvar = mu.flatten(1).to(acc), logvar.flatten(1).to(acc)
    return -0.5 * (1.0 + logvar - mu.square() - logvar.exp()).sum(dim=1)


def reparameterize_kl_reference(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor
                                ) -> tuple[torch.Tensor, torch.Tensor]:
    z = mu + eps * torch.exp(0.5 * logvar)
    return z, kl_normal_reference(mu, logvar)


def reparameterize_kl(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample z ~ q(z|x) differentiably and return it with the per-sample KL from N(0, I).

    Args:
        mu, logvar: [B, latent] encoder heads.
        eps: [B, latent] standard normal noise (passed in so that callers control the random stream).
    Returns:
        z: [B, latent] in the dtype of mu; kl: [B] in fp32.
    """
    check_pair("reparameterize_kl", ("mu", "logvar"), mu, logvar)
    check_pair("reparameterize_kl", ("mu", "eps"), mu, eps)
    if use_triton(mu, logvar, eps):
        return ReparameterizeKL.apply(mu, logvar, eps)
    z, kl = reparameterize_kl_reference(mu, logvar, eps)
    return z.to(mu.dtype), kl
