"""One RMSProp optimiser per network, and the learning-rate schedule."""

from __future__ import annotations

import torch
from torch import nn

from vaegan_dist.model import VAEGAN


def _param_groups(module: nn.Module, weight_decay: float, exempt: set[int]) -> list[dict]:
    """L2 decay on conv/linear weights only: not on biases, BN parameters or the exempt (mu/logvar heads)."""
    decay, no_decay = [], []
    for m in module.modules():
        for name, p in m.named_parameters(recurse=False):
            is_weight = isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)) and name == "weight"
            (decay if is_weight and id(p) not in exempt else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def base_lrs(optim) -> dict[str, float]:
    return {"encoder": optim.lr_encoder, "decoder": optim.lr_decoder, "discriminator": optim.lr_discriminator}


def build_optimizers(model: VAEGAN, optim) -> dict[str, torch.optim.Optimizer]:
    """One RMSProp per network of ``model``; ``optim`` is a :class:`vaegan_dist.config.OptimConfig`."""
    exempt = {id(p) for p in model.encoder.head_parameters()} if model.encoder is not None else set()
    lrs = base_lrs(optim)
    return {
        name: torch.optim.RMSprop(_param_groups(network, optim.weight_decay, exempt), lr=lrs[name],
                                  alpha=optim.rms_decay, eps=optim.eps)
        for name, network in model.networks().items()
    }


def apply_settings(optimizers: dict[str, torch.optim.Optimizer], optim) -> None:
    """Put the config's RMSProp settings into the optimisers. ``load_state_dict`` on resume restores the
    settings saved with the run; a user who changed them on the command line means the new ones.
    Group 0 holds the decayed weights (see ``_param_groups``)."""
    for opt in optimizers.values():
        for index, group in enumerate(opt.param_groups):
            group["alpha"], group["eps"] = optim.rms_decay, optim.eps
            group["weight_decay"] = optim.weight_decay if index == 0 else 0.0


def lr_at(step: int, total_steps: int, base_lr: float, optim) -> float:
    """constant, or the released code's anneal lr - (t/T)^p * (lr - lr * final_ratio)."""
    if optim.schedule == "constant":
        return base_lr
    t = min(1.0, step / max(1, total_steps))
    return base_lr - t**optim.anneal_power * (base_lr - base_lr * optim.lr_final_ratio)


def set_lrs(optimizers: dict[str, torch.optim.Optimizer], step: int, total_steps: int, optim) -> dict[str, float]:
    lrs = {name: lr_at(step, total_steps, base, optim) for name, base in base_lrs(optim).items()}
    for name, opt in optimizers.items():
        for group in opt.param_groups:
            group["lr"] = lrs[name]
    return lrs
