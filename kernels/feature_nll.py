"""Gaussian negative log-likelihood of features with unit variance: the paper's L_llike.

    L_llike(i) = 1/2 * sum_j (f_rec[i, j] - f_target[i, j])^2        (the constant is dropped)

f_rec are Dis_l(x~), the discriminator's layer-l features of the reconstructions, f_target are
Dis_l(x) of the data. Accumulation is in fp32 whatever the input dtype, because a 16,384-term sum of
squares in bf16 loses most of its digits.
"""

from __future__ import annotations

import torch

from kernels._checks import Reduction, check_pair, check_reduction, reduce_per_sample


def feature_nll_reference(f_rec: torch.Tensor, f_target: torch.Tensor) -> torch.Tensor:
    """Per-sample loss [B] in fp32; the definition the fused kernel is tested against."""
    diff = f_rec.flatten(1).float() - f_target.flatten(1).float()
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
    return reduce_per_sample(feature_nll_reference(f_rec, f_target), reduction)
