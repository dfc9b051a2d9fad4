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
    """One RMSProp (or Adam) per network of ``model``; ``optim`` is a :class:`vaegan_dist.config.OptimConfig`.

    On a GPU the optimisers are ``capturable``: their step counters live on the device, so a step the
    equilibrium trick masks (train/step.py) is undone on the device without a host synchronisation."""
    exempt = {id(p) for p in model.encoder.head_parameters()} if model.encoder is not None else set()
    lrs = base_lrs(optim)
    optimizers = {}
    for name, network in model.networks().items():
        groups = _param_groups(network, optim.weight_decay, exempt)
        capturable = next(network.parameters()).is_cuda
        if optim.algorithm == "adam":
            optimizers[name] = torch.optim.Adam(groups, lr=lrs[name], betas=(optim.adam_beta1, optim.adam_beta2),
                                                eps=optim.eps, capturable=capturable)
        else:
            optimizers[name] = torch.optim.RMSprop(groups, lr=lrs[name], alpha=optim.rms_decay, eps=optim.eps,
                                                   capturable=capturable)
    return optimizers


def apply_settings(optimizers: dict[str, torch.optim.Optimizer], optim) -> None:
    """Put the config's optimiser settings into the optimisers. ``load_state_dict`` on resume restores the
    settings saved with the run; a user who changed them on the command line means the new ones.
    Group 0 holds the decayed weights (see ``_param_groups``)."""
    for opt in optimizers.values():
        for index, group in enumerate(opt.param_groups):
            if "alpha" in group:
                group["alpha"] = optim.rms_decay
            if "betas" in group:
                group["betas"] = (optim.adam_beta1, optim.adam_beta2)
            group["eps"] = optim.eps
            group["weight_decay"] = optim.weight_decay if index == 0 else 0.0
        fit_to_device(opt)


def fit_to_device(opt: torch.optim.Optimizer) -> None:
    """``capturable`` as ``build_optimizers`` chooses it for where the parameters are now, with the step counters
    where that setting needs them. ``load_state_dict`` brings back the saved groups' flag: a checkpoint saved on a
    GPU, resumed on a CPU, would fail its first step (capturable needs device parameters), and a CPU checkpoint
    resumed on a GPU would read Adam's step counter on the host every step."""
    for group in opt.param_groups:
        if "capturable" not in group:
            continue
        on_gpu = any(p.is_cuda for p in group["params"])
        group["capturable"] = on_gpu
        for p in group["params"]:
            step = opt.state.get(p, {}).get("step")
            if torch.is_tensor(step):
                opt.state[p]["step"] = step.to(p.device if on_gpu else torch.device("cpu"))


def lr_at(step: int, total_steps: int, base_lr: float, optim) -> float:
    """constant, or the released code's anneal lr - (t/T)^p * (lr - lr * final_ratio)."""
    if optim.schedule == "constant":
        return base_lr
    t = min(1.0, step / max(1, total_steps))
    return base_lr - t**optim.anneal_power * (base_lr - base_lr * optim.lr_final_ratio)


def set_lrs(optimizers: dict[str, torch.optim.Optimizer], step: int, total_steps: int, optim) -> dict[str, float]:
    """Each optimiser's learning rate at ``step``; returns them by network (only the networks that train: a
    GAN has no encoder, so no lr/encoder in its TensorBoard)."""
    lrs = {name: lr_at(step, total_steps, base, optim) for name, base in base_lrs(optim).items() if name in optimizers}
    for name, opt in optimizers.items():
        for group in opt.param_groups:
            group["lr"] = lrs[name]
    return lrs


@torch.no_grad()
def step_where(optimizer: torch.optim.Optimizer, update: torch.Tensor) -> None:
    """``optimizer.step()`` where ``update`` (a 0-d bool tensor on the parameters' device) is true; where it is
    false, weights and optimiser state end exactly as if the step had been skipped, and no value is read on
    the host (a branch on ``update`` would stall a GPU's pipeline every step).

    The step is taken, then every parameter and state tensor is put back to its old value under the mask.
    State that did not exist before (the first step) goes back to zeros, which is how RMSProp and Adam
    initialise it (a zero step counter, zero moving averages), so a later step cannot tell the difference.
    On a GPU the optimisers are capturable (build_optimizers), so the step counters are on the device too.

    The put-back is ``new.lerp_(old, skip)`` with skip 0 or 1, not ``torch.where``: ATen's lerp computes
    ``new + 0 * (old - new)`` for weight 0 and ``old - (old - new) * 0`` for weight 1, so it returns either
    value exactly, in place and vectorised (where a masked step made a value non-finite, the put-back gives
    NaN, and train/health.py stops the run as it does on a non-finite loss). ``python bench/masked_step.py``
    measures it against where + copy (bench/RESULTS.md, "Training step throughput")."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    old_params = [p.detach().clone() for p in params]
    old_state = [{k: v.clone() for k, v in optimizer.state[p].items() if torch.is_tensor(v)} for p in params]
    optimizer.step()
    skip = (~update).to(torch.float32)
    for p, old in zip(params, old_params, strict=True):
        p.detach().lerp_(old, skip.to(p.dtype))
    for p, saved in zip(params, old_state, strict=True):
        for key, value in optimizer.state[p].items():
            if torch.is_tensor(value):
                before = saved[key] if key in saved else torch.zeros_like(value)
                if value.is_floating_point():
                    value.lerp_(before, skip.to(value.device, value.dtype))
                else:  # an integer step counter
                    value.copy_(torch.where(update.to(value.device), value, before))
