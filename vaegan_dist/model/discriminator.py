"""Dis: x -> (logit of "real", Dis_l features). Dis_l is the learned similarity metric of the paper."""

from __future__ import annotations

import torch
from torch import nn

from vaegan_dist.model.architecture import KERNEL, Architecture
from vaegan_dist.model.layers import PAD, conv_bn_relu, fc_bn_relu, join_condition, paper_init


class Discriminator(nn.Module):
    """A 5x5 conv + ReLU without BN, stride-2 convs with BN + ReLU, FC with BN + ReLU, FC to one logit.

    The forward pass returns the logit (the sigmoid lives in the loss, for numerical stability) and the
    output of the Dis_l convolution before its BN, flattened: at 64 px that is the 4th conv, 256x8x8 (the
    paper's; ``model.dis_l_side`` picks another stride-2 conv by its output side).
    An attribute-conditioned discriminator gets y at its FC layer, after Dis_l: it judges whether an image
    is a real face *with these attributes*, while Dis_l (the similarity metric) stays a function of the image.
    With ``batch_norm=False`` (``model.discriminator_norm=none``) no layer normalises over the batch: a real
    image's logit no longer depends on which fakes share its batch (the batch is [x, x~, x_p]), and R1,
    which runs on real images alone, penalises the same function the GAN loss trains. Dis_l is still the
    same convolution's output, now with a bias.
    With ``spectral_norm`` every layer's weight is divided by its largest singular value (power iteration, one
    step per training forward); Dis_l is still the same convolution's output before its BN, at a smaller scale.
    """

    def __init__(self, arch: Architecture, fc: int, condition_dim: int = 0, spectral_norm: bool = False,
                 batch_norm: bool = True):
        super().__init__()
        self.condition_dim = condition_dim
        self.stem = nn.Sequential(nn.Conv2d(3, arch.discriminator_stem, KERNEL, padding=PAD), nn.ReLU(inplace=True))
        channels = (arch.discriminator_stem, *arch.discriminator_channels)
        self.blocks = nn.ModuleList(conv_bn_relu(a, b, batch_norm) for a, b in zip(channels, channels[1:]))
        self.dis_l_block = arch.dis_l_block
        self.fc = fc_bn_relu(channels[-1] * arch.bottom_side**2 + condition_dim, fc, batch_norm)
        self.logit = nn.Linear(fc, 1)
        paper_init(self)
        if spectral_norm:  # model.spectral_norm: every weight divided by its largest singular value
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.Linear)):
                    nn.utils.parametrizations.spectral_norm(m)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x: [N, 3, S, S] (and y: [N, attributes] 0/1 if conditioned) -> logits [N], Dis_l features [N, F]."""
        h = self.stem(x)
        features = None
        for i, (conv, bn, relu) in enumerate(self.blocks):
            h = conv(h)
            if i == self.dis_l_block:
                features = h.flatten(1)
            h = relu(bn(h))
        logits = self.logit(self.fc(join_condition(h.flatten(1), y, self.condition_dim, "discriminator"))).squeeze(1)
        return logits, features
