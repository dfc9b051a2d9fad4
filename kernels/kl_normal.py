"""KL divergence of a diagonal Gaussian q(z|x) = N(mu, exp(logvar)) from the prior N(0, I): L_prior.

    KL(i) = -1/2 * sum_j (1 + logvar[i, j] - mu[i, j]^2 - exp(logvar[i, j]))
    dKL/dmu = mu                dKL/dlogvar = 1/2 (exp(logvar) - 1)

The fused kernel (one program per row: latents are short) reads mu and logvar once and writes the
per-row KL and both gradients; backward is a scale by grad_output.
"""

from __future__ import annotations

import torch

from kernels._checks import Reduction, as_rows, check_pair, check_reduction, reduce_per_sample
from kernels._scale import TL_DTYPES, accumulation_dtype, scale_rows
from kernels._triton import tl, triton
from kernels.dispatch import use_triton

if triton is not None:

    @triton.jit
    def _kl_normal_forward_kernel(
        mu_ptr,  # [B, L] posterior means, unit column stride
        logvar_ptr,  # [B, L] posterior log-variances, unit column stride
        mu_stride,  # row strides (elements)
        logvar_stride,
        kl_ptr,  # [B] out, fp32
        grad_mu_ptr,  # [B, L] out, contiguous: dKL/dmu * grad_scale
        grad_logvar_ptr,  # [B, L] out, contiguous: dKL/dlogvar * grad_scale
        L,
        grad_scale,  # 1/B for the mean, else 1
        BLOCK: tl.constexpr,  # >= L
        ACC: tl.constexpr,  # fp32, or fp64 for fp64 inputs
    ):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        mask = cols < L
        mu = tl.load(mu_ptr + row * mu_stride + cols, mask=mask, other=0.0).to(ACC)
        logvar = tl.load(logvar_ptr + row * logvar_stride + cols, mask=mask, other=0.0).to(ACC)
        var = tl.exp(logvar)
        terms = tl.where(mask, 1.0 + logvar - mu * mu - var, 0.0)
        tl.store(kl_ptr + row, -0.5 * tl.sum(terms, axis=0))
        tl.store(grad_mu_ptr + row * L + cols, (mu * grad_scale).to(grad_mu_ptr.dtype.element_ty), mask=mask)
        tl.store(grad_logvar_ptr + row * L + cols, (0.5 * (var - 1.0) * grad_scale).to(grad_logvar_ptr.dtype.element_ty),
                 mask=mask)


class KLNormal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, mu: torch.Tensor, logvar: torch.Tensor, reduction: str) -> torch.Tensor:
        shape = mu.shape
        mu, logvar = as_rows(mu), as_rows(logvar)
        rows, latent = mu.shape
        acc = accumulation_dtype(mu, logvar)
        kl = torch.empty(rows, dtype=acc, device=mu.device)
        grad_mu = torch.empty((rows, latent), dtype=mu.dtype, device=mu.device)
        grad_logvar = torch.empty((rows, latent), dtype=logvar.dtype, device=mu.device)
        _kl_normal_forward_kernel[(rows,)](mu, logvar, mu.stride(0), logvar.stride(0), kl, grad_mu, grad_logvar,
                                           latent, 1.0 / rows if reduction == "mean" else 1.0,
                                           BLOCK=triton.next_power_of_2(latent), ACC=TL_DTYPES[acc], num_warps=1)
        ctx.save_for_backward(grad_mu, grad_logvar)
        ctx.shape = shape
        return reduce_per_sample(kl, reduction)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad_mu, grad_logvar = ctx.saved_tensors
        return (scale_rows(grad_mu, grad_output).view(ctx.shape), scale_rows(grad_logvar, grad_output).view(ctx.shape),
                None)


def kl_normal_reference(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample KL [B] in fp32 (fp64 for fp64 inputs)."""
    acc = accumulation_dtype(mu, logvar)
    mu, logvar = mu.flatten(1).to(acc), logvar.flatten(1).to(acc)
    return -0.5 * (1.0 + logvar - mu.square() - logvar.exp()).sum(dim=1)


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dimensions, reduced over the batch.

    Args:
        mu, logvar: [B, latent] mean and log-variance from the encoder's two heads.
        reduction: "none" ([B]), "sum" or "mean" over the batch.
    """
    check_reduction("kl_normal", reduction)
    check_pair("kl_normal", ("mu", "logvar"), mu, logvar)
    if use_triton(mu, logvar):
        return KLNormal.apply(mu, logvar, reduction)
    return reduce_per_sample(kl_normal_reference(mu, logvar), reduction)
