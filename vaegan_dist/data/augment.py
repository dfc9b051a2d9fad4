"""The released code's small augmentations: translation, scale, rotation, gamma and HSV jitter.

Applied per sample in the DataLoader workers on uint8 [3, S, S] images. Geometry uses reflection at
the borders, so no black edges appear; the ranges are small enough that faces stay aligned.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF


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
        x = TF.adjust_hue(x, u(self.hue))
        x = TF.adjust_saturation(x, 1.0 + u(self.saturation))
        x = TF.adjust_brightness(x, 1.0 + u(self.value))
        return (x.squeeze(0).clamp(0, 1) * 255.0 + 0.5).to(torch.uint8)
