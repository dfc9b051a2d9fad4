"""What deciding the equilibrium trick's skips on the device costs: one optimiser step of every network of a
preset's model, plain, masked with ``torch.where`` (the first way written) and masked with ``lerp_`` (what
:func:`vaegan_dist.train.optim.step_where` does), alternating call by call.

    python bench/masked_step.py                       # smoke's networks, RMSProp, one thread
    python bench/masked_step.py --preset celeba64 --algorithm adam --threads 2

Prints the median milliseconds of each and the masked steps' cost over the plain one. The gradients are fixed
random tensors: the optimiser step's arithmetic does not depend on them.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vaegan_dist.config import build_config
from vaegan_dist.model import build_model
from vaegan_dist.train.optim import step_where


def step_where_by_where(optimizer: torch.optim.Optimizer, update: torch.Tensor) -> None:
    """The first version of step_where: the same contract, put back with torch.where and a copy."""
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    old_params = [p.detach().clone() for p in params]
    old_state = [{k: v.clone() for k, v in optimizer.state[p].items() if torch.is_tensor(v)} for p in params]
    optimizer.step()
    for p, old in zip(params, old_params, strict=True):
        p.detach().copy_(torch.where(update, p, old))
    for p, saved in zip(params, old_state, strict=True):
        for key, value in optimizer.state[p].items():
            if torch.is_tensor(value):
                before = saved[key] if key in saved else torch.zeros_like(value)
                value.copy_(torch.where(update.to(value.device), value, before))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--algorithm", choices=("rmsprop", "adam"), default="rmsprop")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cfg = build_config(args.preset, [])
    networks = build_model(cfg.model, cfg.data.image_size).networks()
    make = {"rmsprop": lambda ps: torch.optim.RMSprop(ps, lr=1e-4, alpha=0.9),
            "adam": lambda ps: torch.optim.Adam(ps, lr=1e-4, betas=(0.5, 0.999))}[args.algorithm]
    optimizers = [make(net.parameters()) for net in networks.values()]
    for net in networks.values():
        for p in net.parameters():
            p.grad = torch.randn_like(p) * 1e-3
    update = torch.tensor(True)  # the full cost: the step is taken, then (not) put back
    ways = {"plain": lambda o: o.step(), "masked, where": lambda o: step_where_by_where(o, update),
            "masked, lerp_ (ours)": lambda o: step_where(o, update)}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for repeat in range(args.repeats + 2):
        for name, way in ways.items():
            started = time.perf_counter()
            for optimizer in optimizers:
                way(optimizer)
            if repeat >= 2:  # the first calls create the optimiser state
                times[name].append(time.perf_counter() - started)
    params = sum(p.numel() for net in networks.values() for p in net.parameters())
    print(f"{args.preset}: {params / 1e6:.1f} M parameters, {args.algorithm}, {args.threads} thread(s), "
          f"median of {args.repeats}")
    plain = statistics.median(times["plain"])
    for name, measured in times.items():
        median = statistics.median(measured)
        print(f"  {name:<22} {median * 1e3:7.2f} ms   {median / plain:4.2f}x plain   +{(median - plain) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
