"""The released code's small augmentations: translation, scale, rotation, gamma and HSV jitter.

Applied per sample in the DataLoader workers on uint8 [3, S, S] images. Geometry uses reflection at
the borders, so no black edges appear; the ranges are small enough that faces stay aligned. The HSV
jitter is done as one 3x3 colour matrix, as StyleGAN2-ADA's augmentations do: hue is a rotation about the
grey axis, saturation a scaling away from it, value a scaling of everything. It is 20x cheaper than
converting each image to HSV and back, and agrees with it to first order for these small ranges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Jitter:
    translate: float = 0.03  # fraction of the side
    scale: float = 0.05  # relative
    rotate: float = 3.0  # degrees
    gamma: float = 0.1  # log-gamma range
    hue: float = 0.02  # fraction of the colour circle
    saturation: float = 0.1  # relative
    value: float = 0.1  # relative brightness

    def __call__(self, image: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        u = lambda r: float(rng.uniform(-r, r))  # noqa: E731
        x = image.float().unsqueeze(0) / 255.0
        angle, scale = math.radians(u(self.rotate)), 1.0 + u(self.scale)
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        theta = torch.tensor([[[cos, -sin, 2 * u(self.translate)], [sin, cos, 2 * u(self.translate)]]])
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        x = x.clamp(0, 1).pow(math.exp(u(self.gamma)))
        colour = colour_matrix(2 * math.pi * u(self.hue), 1.0 + u(self.saturation), 1.0 + u(self.value))
        x = torch.einsum("ij,jhw->ihw", colour, x.squeeze(0))
        return (x.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)


_GREY = torch.full((3,), 1 / math.sqrt(3))
_GREY_PROJECTION = torch.outer(_GREY, _GREY)
_CROSS = torch.tensor([[0.0, -_GREY[2], _GREY[1]], [_GREY[2], 0.0, -_GREY[0]], [-_GREY[1], _GREY[0], 0.0]])


def colour_matrix(hue_angle: float, saturation: float, value: float) -> torch.Tensor:
    """value * (saturation about the grey axis) @ (rotation by hue_angle about the grey axis), 3x3."""
    rotation = (math.cos(hue_angle) * torch.eye(3) + math.sin(hue_angle) * _CROSS
                + (1 - math.cos(hue_angle)) * _GREY_PROJECTION)
    saturate = _GREY_PROJECTION + saturation * (torch.eye(3) - _GREY_PROJECTION)
    return value * saturate @ rotation
