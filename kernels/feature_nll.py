"""Gaussian negative log-likelihood of features with unit variance: the paper's L_llike.

    L_llike(i) = 1/2 * sum_j (f_rec[i, j] - f_target[i, j])^2        (the constant is dropped)

f_rec are Dis_l(x~), the discriminator's layer-l features of the reconstructions, f_target are
Dis_l(x) of the data. Accumulation is in fp32 whatever the input dtype, because a 16,384-term sum of
squares in bf16 loses most of its digits.

The fused kernel reads f_rec and f_target once and, in the same pass, writes the per-chunk sums and the
gradient d L / d f_rec = (f_rec - f_target) * (1/B for "mean"), so the backward pass is only a scale by
grad_output. Programs are (row, chunk) so that batch 64 still fills a GPU; each writes one fp32 partial
sum into a [B, chunks] buffer that is reduced afterwards (deterministic, no atomics).
"""

from __future__ import annotations

import torch

from vaegan_kernels._checks import Reduction, as_rows, check_pair, check_reduction, reduce_per_sample
from vaegan_kernels._scale import TL_DTYPES, accumulation_dtype, scale_rows
from vaegan_kernels._triton import tl, triton
from vaegan_kernels.dispatch import use_triton

BLOCK = 2048  # features per program: 8 programs per 16,384-feature row

if triton is not None:

    @triton.jit
    def _feature_nll_forward_kernel(
        f_rec_ptr,  # [B, D] reconstructions' features, unit column stride
        f_target_ptr,  # [B, D] data features, unit column stride
        rec_stride,  # row stride of f_rec (elements)
        target_stride,  # row stride of f_target (elements)
        grad_ptr,  # [B, D] out, contiguous: d loss / d f_rec for grad_output = 1
        partial_ptr,  # [B, chunks] out, fp32: 1/2 sum (f_rec - f_target)^2 over each chunk
        D,  # features per row
        chunks,  # cdiv(D, BLOCK)
        grad_scale,  # 1/B for the mean, else 1: folded in so backward is a plain scale
        BLOCK: tl.constexpr,
        ACC: tl.constexpr,  # accumulation dtype: fp32, or fp64 for fp64 inputs (gradcheck)
    ):
        row = tl.program_id(0).to(tl.int64)
        chunk = tl.program_id(1)
        cols = chunk * BLOCK + tl.arange(0, BLOCK)
        mask = cols < D
        a = tl.load(f_rec_ptr + row * rec_stride + cols, mask=mask, other=0.0).to(ACC)
        b = tl.load(f_target_ptr + row * target_stride + cols, mask=mask, other=0.0).to(ACC)
        diff = a - b
        # d/da [1/2 (a - b)^2] = a - b ; d/db = -(a - b), formed in backward only if f_target needs it.
        tl.store(grad_ptr + row * D + cols, (diff * grad_scale).to(grad_ptr.dtype.element_ty), mask=mask)
        tl.store(partial_ptr + row * chunks + chunk, 0.5 * tl.sum(diff * diff, axis=0))


def feature_nll_triton_forward(f_rec: torch.Tensor, f_target: torch.Tensor, grad_scale: float
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row loss [B] (fp32; fp64 for fp64 inputs) and the gradient buffer [B, D] (dtype of f_rec)."""
    f_rec, f_target = as_rows(f_rec), as_rows(f_target)
    rows, d = f_rec.shape
    chunks = triton.cdiv(d, BLOCK)
    acc = accumulation_dtype(f_rec, f_target)
    grad = torch.empty((rows, d), dtype=f_rec.dtype, device=f_rec.device)
    partial = torch.empty((rows, chunks), dtype=acc, device=f_rec.device)
    _feature_nll_forward_kernel[(rows, chunks)](f_rec, f_target, f_rec.stride(0), f_target.stride(0), grad, partial,
                                                d, chunks, grad_scale, BLOCK=BLOCK, ACC=TL_DTYPES[acc], num_warps=4)
    return partial.sum(dim=1), grad


class FeatureNLL(torch.autograd.Function):
    @staticmethod
    def forward(ctx, f_rec: torch.Tensor, f_target: torch.Tensor, reduction: str) -> torch.Tensor:
        rows = f_rec.shape[0]
        per_row, grad = feature_nll_triton_forward(f_rec, f_target, 1.0 / rows if reduction == "mean" else 1.0)
        ctx.save_for_backward(grad)
        ctx.shape = f_rec.shape
        ctx.target_dtype = f_target.dtype
        return reduce_per_sample(per_row, reduction)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (grad,) = ctx.saved_tensors
        grad_rec = scale_rows(grad, grad_output).view(ctx.shape)
        grad_target = -grad_rec.to(ctx.target_dtype) if ctx.needs_input_grad[1] else None
        return grad_rec, grad_target, None


def feature_nll_reference(f_rec: torch.Tensor, f_target: torch.Tensor) -> torch.Tensor:
    """Per-sample loss [B] in fp32 (fp64 for fp64 inputs); the definition the kernel is tested against."""
    acc = accumulation_dtype(f_rec, f_target)
    diff = f_rec.flatten(1).to(acc) - f_target.flatten(1).to(acc)
    return 0.5 * diff.square().sum(dim=1)


def feature_nll(f_rec: torch.Tensor, f_target: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """1/2 ||f_rec - f_target||^2 per sample over all feature dimensions, reduced over the batch.

    Args:
        f_rec: [B, ...] features of the reconstructions; receives a gradient.
        f_target: [B, ...] features of the data; receives a gradient only if it requires one (the VAE/GAN
            passes it detached, because L_llike must not train the discriminator).
        reduction: "none" ([B]), "sum" or "mean" over the batch.
    Returns:
        fp32 loss.
    """
    check_reduction("feature_nll", reduction)
    check_pair("feature_nll", ("f_rec", "f_target"), f_rec, f_target)
    if use_triton(f_rec, f_target):
        return FeatureNLL.apply(f_rec, f_target, reduction)
    return reduce_per_sample(feature_nll_reference(f_rec, f_target), reduction)
