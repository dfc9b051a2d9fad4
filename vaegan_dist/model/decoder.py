"""Dec (the GAN's generator): z -> x."""

from __future__ import annotations

import torch
from torch import nn

from vaegan_dist.model.architecture import KERNEL, Architecture
from vaegan_dist.model.layers import PAD, deconv_bn_relu, fc_bn_relu, join_condition, paper_init


class Decoder(nn.Module):
    """FC to (C, side, side) with BN + ReLU, stride-2 transposed convs with BN + ReLU, a 5x5 conv to RGB, tanh.

    At 64 px: 128 -> 256x8x8 -> 256x16x16 -> 128x32x32 -> 32x64x64 -> 3x64x64.
    An attribute-conditioned decoder gets y beside z: Dec(z, y) generates a face with the attributes y. With
    ``batch_norm=False`` (``model.autoencoder_norm=none``) no layer normalises over the batch, so a face no longer
    depends on the other codes it is decoded with (the training step decodes [z, z_p] as one batch).
    """

    def __init__(self, arch: Architecture, latent_dim: int, condition_dim: int = 0, batch_norm: bool = True):
        super().__init__()
        self.condition_dim = condition_dim
        self.start = (arch.decoder_start, arch.bottom_side, arch.bottom_side)
        self.fc = fc_bn_relu(latent_dim + condition_dim, arch.decoder_start * arch.bottom_side**2, batch_norm)
        channels = (arch.decoder_start, *arch.decoder_channels)
        self.deconvs = nn.Sequential(*[deconv_bn_relu(a, b, batch_norm) for a, b in zip(channels, channels[1:])])
        self.to_rgb = nn.Conv2d(channels[-1], 3, KERNEL, padding=PAD)
        paper_init(self)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """z: [B, latent] (and y: [B, attributes] 0/1 if conditioned) -> images [B, 3, S, S] in (-1, 1)."""
        h = self.fc(join_condition(z, y, self.condition_dim, "decoder")).view(z.shape[0], *self.start)
        return torch.tanh(self.to_rgb(self.deconvs(h)))
