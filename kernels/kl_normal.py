"""KL divergence of a diagonal Gaussian q(z|x) = N(mu, exp(logvar)) from the prior N(0, I): L_prior.

    KL(i) = -1/2 * sum_j (1 + logvar[i, j] - mu[i, j]^2 - exp(logvar[i, j]))
"""

from __future__ import annotations

import torch

from kernels._checks import Reduction, check_pair, check_reduction, reduce_per_sample


def kl_normal_reference(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-sample KL [B] in fp32."""
    mu, logvar = mu.flatten(1).float(), logvar.flatten(1).float()
    return -0.5 * (1.0 + logvar - mu.square() - logvar.exp()).sum(dim=1)


def kl_normal(mu: torch.Tensor, logvar: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per sample, summed over latent dimensions, reduced over the batch.

    Args:
        mu, logvar: [B, latent] mean and log-variance from the encoder's two heads.
        reduction: "none" ([B]), "sum" or "mean" over the batch.
    """
    check_reduction("kl_normal", reduction)
    check_pair("kl_normal", ("mu", "logvar"), mu, logvar)
    return reduce_per_sample(kl_normal_reference(mu, logvar), reduction)
