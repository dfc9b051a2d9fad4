"""Building blocks shared by the three networks, and the paper's initialisation."""

from __future__ import annotations

import math

import torch
from torch import nn

from vaegan_dist.model.architecture import BN_MOMENTUM, CONV_BN_EPS, KERNEL

PAD = KERNEL // 2  # "same" padding: stride 2 halves the side exactly


def conv_bn_relu(c_in: int, c_out: int, batch_norm: bool = True) -> nn.Sequential:
    """5x5 stride-2 conv (no bias: BN follows), BN, ReLU. Halves the side. Without ``batch_norm`` the conv has
    a bias and an identity stands where the BN was, so the block keeps its three parts; its ReLU is then not
    in place, because the conv's output may be Dis_l, which the discriminator returns."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, KERNEL, stride=2, padding=PAD, bias=not batch_norm),
        nn.BatchNorm2d(c_out, eps=CONV_BN_EPS, momentum=BN_MOMENTUM) if batch_norm else nn.Identity(),
        nn.ReLU(inplace=batch_norm),
    )


def deconv_bn_relu(c_in: int, c_out: int, batch_norm: bool = True) -> nn.Sequential:
    """5x5 stride-2 transposed conv, BN, ReLU. Doubles the side (output_padding=1 makes it exact). Without
    ``batch_norm`` the conv has a bias and an identity stands where the BN was, as in :func:`conv_bn_relu`."""
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, KERNEL, stride=2, padding=PAD, output_padding=1, bias=not batch_norm),
        nn.BatchNorm2d(c_out, eps=CONV_BN_EPS, momentum=BN_MOMENTUM) if batch_norm else nn.Identity(),
        nn.ReLU(inplace=True),
    )


def fc_bn_relu(n_in: int, n_out: int, batch_norm: bool = True) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(n_in, n_out, bias=not batch_norm),
        nn.BatchNorm1d(n_out, momentum=BN_MOMENTUM) if batch_norm else nn.Identity(),
        nn.ReLU(inplace=True),
    )


def join_condition(h: torch.Tensor, y: torch.Tensor | None, condition_dim: int, network: str) -> torch.Tensor:
    """``h`` with the attribute vector ``y`` (0/1 per attribute, [B, condition_dim]) appended as +-1 features:
    how an attribute-conditioned network (the paper's section 4.2) sees y. A conditioned network refuses to
    run without y and an unconditioned one refuses a y, so a caller can never silently drop the condition."""
    if condition_dim == 0:
        if y is not None:
            raise ValueError(f"the {network} is not conditioned on attributes, but was given an attribute vector")
        return h
    if y is None:
        raise ValueError(f"the {network} is conditioned on {condition_dim} attributes: pass them as y")
    if y.shape != (h.shape[0], condition_dim):
        raise ValueError(f"the {network} expects attributes of shape [{h.shape[0]}, {condition_dim}], "
                         f"got {list(y.shape)}")
    return torch.cat([h, y.to(h.dtype) * 2 - 1], dim=1)


def fan_in(weight: torch.Tensor, transposed: bool) -> int:
    """Inputs feeding one output unit. A transposed conv's weight is [in, out, k, k]."""
    receptive = weight[0, 0].numel() if weight.dim() > 2 else 1
    return (weight.shape[0] if transposed else weight.shape[1]) * receptive


@torch.no_grad()
def paper_init(module: nn.Module) -> None:
    """Weights uniform in +-1/sqrt(3 * fan_in), biases 0, BN scale 1 and shift 0, as in the authors'
    released code (andersbll/autoencoding_beyond_pixels)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            bound = 1.0 / math.sqrt(3.0 * fan_in(m.weight, isinstance(m, nn.ConvTranspose2d)))
            m.weight.uniform_(-bound, bound)
            if m.bias is not None:
                m.bias.zero_()
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_parameters()
