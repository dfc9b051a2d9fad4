"""Inception features for FID, only from a weights file the user has: nothing is ever downloaded.

The network is torchvision's Inception v3 (load torchvision's ImageNet weights file,
``inception_v3_google-0cc3c7bd.pth``, or any state dict of that architecture); features are its 2048
pooled activations for images resized to 299x299 with ImageNet normalisation. The values are comparable
between runs scored with the same file, not with FIDs published from TensorFlow's Inception graph.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vaegan_dist.errors import CheckpointError
from vaegan_dist.model.store import load_tensors

_MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
_STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def load_inception(path: str | Path, device: torch.device | str = "cpu") -> Callable[[torch.Tensor], torch.Tensor]:
    """A function from images in [-1, 1] [N, 3, S, S] to Inception pool features [N, 2048]."""
    from torchvision.models import inception_v3

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such Inception weights file")
    state = load_tensors(path, "cpu", "weights file")
    # transform_input=True, as torchvision builds it for its ImageNet weights (the ported Google weights expect
    # its rescaling of ImageNet-normalised input)
    network = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    try:
        network.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{path}: not torchvision Inception v3 weights ({first[:200]})") from None
    network.fc = nn.Identity()
    network.eval().to(device)
    mean, std = _MEAN.to(device), _STD.to(device)

    @torch.no_grad()
    def features(images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate((images.to(device).float() + 1) / 2, size=(299, 299), mode="bilinear", align_corners=False)
        return network((x - mean) / std)

    return features
