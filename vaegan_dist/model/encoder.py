"""Enc: x -> (mu, logvar) of q(z|x)."""

from __future__ import annotations

import torch
from torch import nn

from vaegan_dist.model.architecture import Architecture
from vaegan_dist.model.layers import conv_bn_relu, fc_bn_relu, paper_init


class Encoder(nn.Module):
    """Stride-2 convs with BN + ReLU, an FC layer with BN + ReLU, then linear mu and logvar heads.

    At 64 px: 64 -> 32 -> 16 -> 8 with 64, 128, 256 channels; FC 2048 (paper) or 1024 (code); latent 128.
    """

    def __init__(self, arch: Architecture, latent_dim: int, fc: int):
        super().__init__()
        channels = (3, *arch.encoder_channels)
        self.convs = nn.Sequential(*[conv_bn_relu(a, b) for a, b in zip(channels, channels[1:])])
        self.fc = fc_bn_relu(channels[-1] * arch.bottom_side**2, fc)
        self.mu = nn.Linear(fc, latent_dim)
        self.logvar = nn.Linear(fc, latent_dim)
        paper_init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, 3, S, S] in [-1, 1] -> mu, logvar: [B, latent]."""
        h = self.fc(self.convs(x).flatten(1))
        return self.mu(h), self.logvar(h)

    def head_parameters(self) -> list[nn.Parameter]:
        """The mu/logvar heads, which the paper exempts from weight decay."""
        return [*self.mu.parameters(), *self.logvar.parameters()]
