"""The reparameterisation trick and the KL term together, because both read mu and logvar.

    z = mu + eps * exp(logvar / 2)
    KL(i) = -1/2 * sum_j (1 + logvar - mu^2 - exp(logvar))

Fusing them lets the GPU kernel read mu and logvar once and compute exp(logvar / 2) once
(exp(logvar) is its square).
"""

from __future__ import annotations

import torch

from kernels._checks import check_pair
from kernels.kl_normal import kl_normal_reference


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
    z = mu + eps * torch.exp(0.5 * logvar)
    return z, kl_normal_reference(mu, logvar)
