"""The shared backward of the fused ops: gradient buffer x grad_output, row by row, out of place.

The forward pass already wrote d loss / d input for grad_output = 1; backward only multiplies by
grad_output, which is a scalar (reductions "sum"/"mean", row stride 0) or one value per row ("none").
Reading grad_output through a pointer keeps this free of host synchronisation.
"""

from __future__ import annotations

import torch

from vaegan_kernels._triton import tl, triton

SCALE_BLOCK = 2048


def accumulation_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """fp32 for every input dtype except fp64, which keeps fp64 (so that gradcheck can run)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


TL_DTYPES = {torch.float32: tl.float32, torch.float64: tl.float64} if triton is not None else {}

if triton is not None:

    @triton.jit
    def _scale_rows_kernel(
        grad_ptr,  # [B, D] contiguous: gradient for grad_output = 1
        scale_ptr,  # [B] or a 0-d tensor: grad_output
        scale_stride,  # 1 for per-row grad_output, 0 for a scalar
        out_ptr,  # [B, D] contiguous: grad_output * grad
        D,
        BLOCK: tl.constexpr,
        ACC: tl.constexpr,  # fp32, or fp64 for fp64 gradients
    ):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        mask = cols < D
        scale = tl.load(scale_ptr + row * scale_stride).to(ACC)
        g = tl.load(grad_ptr + row * D + cols, mask=mask, other=0.0).to(ACC)
        tl.store(out_ptr + row * D + cols, (g * scale).to(out_ptr.dtype.element_ty), mask=mask)


def scale_rows(grad: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    """grad [B, D] * grad_output (0-d, or [B] broadcast over D), as a new tensor."""
    rows, d = grad.shape
    out = torch.empty_like(grad)
    grad_output = grad_output.contiguous()
    stride = 0 if grad_output.dim() == 0 else 1
    acc = TL_DTYPES[accumulation_dtype(grad)]
    _scale_rows_kernel[(rows, triton.cdiv(d, SCALE_BLOCK))](grad, grad_output, stride, out, d,
                                                             BLOCK=SCALE_BLOCK, ACC=acc, num_warps=4)
    return out
