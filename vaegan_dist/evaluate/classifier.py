"""The evaluator's network: a small multi-label attribute classifier whose penultimate layer is the feature
space the sample-quality metrics are measured in.

Small on purpose: it is trained once per data set on a CPU in about a minute for the built-in faces, and
it runs on every held-out image at every evaluation during training. It only has to see what the data's
attributes make visible, which is what "does the model keep identity and attributes" asks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

FEATURES = 256  # width of the penultimate layer: the feature space of fd, precision and recall


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class AttributeClassifier(nn.Module):
    """conv 3x3 blocks down to 4x4 (one stride-2 block per octave above 4 px), global average pooling to
    ``FEATURES`` values, then one linear layer to a logit per attribute."""

    def __init__(self, image_size: int, num_attributes: int, features: int = FEATURES):
        super().__init__()
        octaves = int(math.log2(image_size // 4))
        if image_size < 8 or 4 * 2**octaves != image_size:
            raise ValueError(f"image size {image_size}: the evaluator needs a power of two >= 8")
        widths = [min(features, 32 * 2**i) for i in range(octaves)] + [features]
        layers = [_block(3, widths[0], 1)]
        layers += [_block(widths[i], widths[i + 1], 2) for i in range(octaves)]
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(features, num_attributes)
        self.image_size = image_size

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[B, FEATURES] for images in [-1, 1]."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
