"""What gloo's all-reduce costs the main job: the smoke networks' gradients all-reduced between 2 local
processes of one thread each, as DDP does every step (one all-reduce per network that the step updates), against
the bare step's time.

    python bench/allreduce.py                   # 2 processes, 50 timed steps
    python bench/allreduce.py --steps 200 --precision fp32

Each process holds the smoke preset's three networks; a "step" all-reduces a gradient-sized buffer of each
(DDP's default 25 MB buckets hold each of these networks whole), with a barrier first so that the time is the
all-reduce itself, not the wait for the slower process. The step's time comes from the same two processes
stepping at once (TrainStep in the given precision, one thread each, without DDP), so the share is measured side
by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, init_file: str, steps: int, precision: str, out: dict) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    from vaegan_dist.config import build_config
    from vaegan_dist.model import build_model
    from vaegan_dist.train.optim import build_optimizers
    from vaegan_dist.train.runtime import runtime_for
    from vaegan_dist.train.step import TrainStep

    cfg = build_config("smoke", [f"train.precision={precision}"])
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.data.image_size).to(memory_format=torch.channels_last)
    buffers = {name: torch.zeros(sum(p.numel() for p in net.parameters())) for name, net in model.networks().items()}
    reduce_times = []
    for i in range(steps + 5):
        dist.barrier()
        started = time.perf_counter()
        for buffer in buffers.values():
            dist.all_reduce(buffer)
        if i >= 5:
            reduce_times.append(time.perf_counter() - started)
    # Both ranks step at once, as the job's two workers do on 2 cores (the step averages its equilibrium costs
    # over ranks: a few scalars); the networks are not DDP-wrapped, so no gradient is all-reduced here.
    step = TrainStep(model.networks(), build_optimizers(model, cfg.optim), cfg,
                     runtime_for(False, precision=precision), noise_seed=rank)
    images = torch.randint(0, 256, (cfg.data.batch_size, 3, 32, 32), dtype=torch.uint8)
    step_times = []
    for i in range(2 + 4 * max(1, steps // 20)):  # whole R1 intervals of 4
        started = time.perf_counter()
        step(images, i)
        if i >= 2:
            step_times.append(time.perf_counter() - started)
    if rank == 0:
        out["params"] = {k: v.numel() for k, v in buffers.items()}
        out["reduce"] = statistics.median(reduce_times)
        out["step"] = statistics.fmean(step_times)
    dist.barrier()
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_worker, args=(2, os.path.join(tmp, "init"), args.steps, args.precision, out), nprocs=2)
        params = dict(out["params"])
        total = sum(params.values())
        print(f"gradients: {', '.join(f'{k} {v / 1e6:.2f} M' for k, v in params.items())}; "
              f"{total * 4 / 1e6:.1f} MB of float32 per step")
        print(f"gloo all-reduce of all three, 2 processes x 1 thread: {out['reduce'] * 1e3:.1f} ms (median); "
              f"the bare {args.precision} step: {out['step'] * 1e3:.1f} ms; all-reduce / step = "
              f"{out['reduce'] / out['step']:.1%}")


if __name__ == "__main__":
    main()
