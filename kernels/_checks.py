"""Argument checks shared by the ops, so every op fails the same clear way on bad input."""

from __future__ import annotations

from typing import Literal

import torch

Reduction = Literal["none", "sum", "mean"]
REDUCTIONS: tuple[str, ...] = ("none", "sum", "mean")


def check_reduction(op: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction={reduction!r} is not one of {', '.join(REDUCTIONS)}")


def check_pair(op: str, names: tuple[str, str], a: torch.Tensor, b: torch.Tensor) -> None:
    """Both tensors must be [B, ...] with the same shape, B >= 1, floating point, same device."""
    if a.shape != b.shape:
        raise ValueError(f"{op}: {names[0]} has shape {tuple(a.shape)} but {names[1]} has {tuple(b.shape)}")
    if a.dim() < 1 or a.shape[0] == 0:
        raise ValueError(f"{op}: empty batch ({names[0]} has shape {tuple(a.shape)})")
    if not (a.is_floating_point() and b.is_floating_point()):
        raise TypeError(f"{op}: expected floating point tensors, got {a.dtype} and {b.dtype}")
    if a.device != b.device:
        raise ValueError(f"{op}: {names[0]} is on {a.device} but {names[1]} is on {b.device}")


def reduce_per_sample(per_sample: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "none":
        return per_sample
    if reduction == "sum":
        return per_sample.sum()
    return per_sample.mean()


def as_rows(x: torch.Tensor) -> torch.Tensor:
    """[B, ...] -> [B, D] with unit column stride (what the kernels index), copying only if the layout demands it."""
    x = x.reshape(x.shape[0], -1)
    return x if x.stride(1) == 1 else x.contiguous()
