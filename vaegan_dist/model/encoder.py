"""Enc: x -> (mu, logvar) of q(z|x)."""

from __future__ import annotations

import torch
from torch import nn

from vaegan_dist.model.architecture import Architecture
from vaegan_dist.model.layers import conv_bn_relu, fc_bn_relu, join_condition, paper_init


class Encoder(nn.Module):
    """Stride-2 convs with BN + ReLU, an FC layer with BN + ReLU, then linear mu and logvar heads.

    At 64 px: 64 -> 32 -> 16 -> 8 with 64, 128, 256 channels; FC 2048 (paper) or 1024 (code); latent 128.
    An attribute-conditioned encoder gets y beside the flattened convolutions, at the FC layer. With
    ``batch_norm=False`` (``model.autoencoder_norm=none``) no layer normalises over the batch.
    """

    def __init__(self, arch: Architecture, latent_dim: int, fc: int, condition_dim: int = 0,
                 batch_norm: bool = True):
        super().__init__()
        self.condition_dim = condition_dim
        channels = (3, *arch.encoder_channels)
        self.convs = nn.Sequential(*[conv_bn_relu(a, b, batch_norm) for a, b in zip(channels, channels[1:])])
        self.fc = fc_bn_relu(channels[-1] * arch.bottom_side**2 + condition_dim, fc, batch_norm)
        self.mu = nn.Linear(fc, latent_dim)
        self.logvar = nn.Linear(fc, latent_dim)
        paper_init(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [B, 3, S, S] in [-1, 1] (and y: [B, attributes] 0/1 if conditioned) -> mu, logvar: [B, latent]."""
        h = self.fc(join_condition(self.convs(x).flatten(1), y, self.condition_dim, "encoder"))
        return self.mu(h), self.logvar(h)

    def head_parameters(self) -> list[nn.Parameter]:
        """The mu/logvar heads, which the paper exempts from weight decay."""
        return [*self.mu.parameters(), *self.logvar.parameters()]
