"""The training step against the hardware's limit: FLOPs counted, achieved GFLOP/s, the device's measured peak
and the share of it the step reaches, per precision, side by side in one run; then where the time goes.

    python bench/step_flops.py                                   # smoke and celeba64, fp32 and bf16, 1 thread
    python bench/step_flops.py --shapes smoke --threads 1 2 --precisions fp32 bf16 --profile

FLOPs: the matmul and convolution FLOPs of one step (forward and every backward pass, R1's double backward
averaged over its interval), counted by vaegan_dist.train.flops (torch.utils.flop_counter's formulas on every
aten op the step runs), not estimated. Peak: the better of a large matmul and a large channels-last 3x3
convolution in the same dtype and thread count (vaegan_dist.train.peak.measure_peak), measured here, in this
run. The step is the training step itself (vaegan_dist.train.step.TrainStep: forward, the routed backward
passes, the optimisers, the weight average) at the preset's per-worker batch, on one process: no data loading
and no all-reduce (bench/ray_overhead.py measures those), so the share is an upper bound for the main job's.

--compile adds each precision's step with its encoder and decoder under torch.compile (the discriminator stays
eager: R1 takes a double backward through it, which compiled graphs do not support), and prints the compile time
beside the per-step saving: what it would cost and win inside the main job's 3 minutes.

--profile prints the step's time by kind (convolutions, matmuls, elementwise and normalisation, optimiser,
copies and layout, other) from torch.profiler's self CPU time.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from vaegan_dist.config import build_config
from vaegan_dist.model import build_model
from vaegan_dist.objectives import model_kind
from vaegan_dist.train.flops import count_step_flops
from vaegan_dist.train.optim import build_optimizers
from vaegan_dist.train.peak import measure_peak
from vaegan_dist.train.precision import cpu_bf16_features, cpu_has_native_bf16
from vaegan_dist.train.runtime import runtime_for
from vaegan_dist.train.step import TrainStep

# Profiler op names -> where the time goes. Checked in order; the first match wins.
KINDS = (
    ("convolution", ("conv", "mkldnn_convolution", "slow_conv")),
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear")),
    ("optimiser", ("Optimizer", "addcdiv", "lerp", "sqrt", "_foreach", "aten::where", "rmsprop", "adam")),
    ("copies and layout", ("copy_", "_to_copy", "clone", "contiguous", "cat", "empty", "as_strided", "zero_",
                           "fill_")),
    ("elementwise and normalisation", ("relu", "threshold", "leaky", "batch_norm", "add", "mul", "sub", "div",
                                       "exp", "sum", "mean", "sigmoid", "binary_cross", "square", "pow", "neg")),
)


def _steps(shape: str, batch: int | None, precisions: list[str], compiled: bool = False):
    cfg = build_config(shape, [f"data.batch_size={batch}"] if batch else [])
    torch.manual_seed(0)
    base = build_model(cfg.model, cfg.data.image_size).to(memory_format=torch.channels_last)
    flops = count_step_flops(base.networks(), model_kind(cfg.model.kind), cfg.objective, cfg.model.latent_dim,
                             cfg.data.image_size, cfg.data.batch_size)
    steps = {}
    for name in precisions:
        model = copy.deepcopy(base)
        steps[name] = TrainStep(model.networks(), build_optimizers(model, cfg.optim), cfg,
                                runtime_for(False, precision=name), noise_seed=0)
        if compiled:
            model = copy.deepcopy(base)
            networks = {k: torch.compile(v) if k in ("encoder", "decoder") else v for k, v in model.networks().items()}
            steps[f"{name}+compile"] = TrainStep(networks, build_optimizers(model, cfg.optim), cfg,
                                                 runtime_for(False, precision=name), noise_seed=0)
    images = torch.randint(0, 256, (cfg.data.batch_size, 3, cfg.data.image_size, cfg.data.image_size),
                           dtype=torch.uint8)
    return cfg, flops, steps, images


def _kind(op: str) -> str:
    return next((kind for kind, keys in KINDS if any(k in op for k in keys)), "other")


def profile_step(step: TrainStep, images: torch.Tensor, start: int, count: int) -> dict[str, float]:
    """Self CPU seconds per step by kind over ``count`` steps."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(count):
            step(images, start + i)
    by_kind: dict[str, float] = {}
    for event in prof.key_averages():
        by_kind[_kind(event.key)] = by_kind.get(_kind(event.key), 0.0) + event.self_cpu_time_total / 1e6 / count
    return by_kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["smoke", "celeba64"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1], help="one worker's thread counts")
    parser.add_argument("--steps", type=int, default=6,
                        help="timed steps per precision, rounded up to whole R1 intervals (after the warm-up)")
    parser.add_argument("--batch", type=int, default=None, help="override the preset's per-worker batch")
    parser.add_argument("--profile", action="store_true", help="also print where each step's time goes")
    parser.add_argument("--compile", action="store_true", help="also time each precision with torch.compile")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, bf16 "
          f"instructions: {', '.join(cpu_bf16_features()) or 'none'} (native bf16: {cpu_has_native_bf16()})")
    for threads in args.threads:
        torch.set_num_threads(threads)
        peaks = {name: measure_peak(torch.device("cpu"), torch.float32 if name == "fp32" else torch.bfloat16)
                 for name in args.precisions}
        for name, p in peaks.items():
            print(f"{threads} thread(s) peak {name}: matmul {p['matmul']:7.1f} GFLOP/s, conv {p['conv']:7.1f} GFLOP/s")
        for shape in args.shapes:
            cfg, flops, steps, images = _steps(shape, args.batch, args.precisions, args.compile)
            times = {name: [] for name in steps}
            first: dict[str, float] = {}
            warm = 8 if args.compile else 1  # compiled: the first steps trace, compile and may recompile (guards)
            # Whole R1 intervals, averaged: the FLOPs are R1's mean too (a median would time the plain step only).
            cycle = cfg.objective.r1_every if cfg.objective.r1_gamma > 0 else 1
            timed = -(-args.steps // cycle) * cycle
            for i in range(timed + warm):  # alternate step by step: machine noise hits both alike
                for name, step in steps.items():
                    started = time.perf_counter()
                    step(images, i)
                    if i >= warm:
                        times[name].append(time.perf_counter() - started)
                    else:
                        first[name] = first.get(name, 0.0) + time.perf_counter() - started
            b = cfg.data.batch_size
            print(f"{shape}: batch {b} at {cfg.data.image_size} px, {flops.per_step / 1e9:.1f} GFLOP per step "
                  f"({flops.plain / 1e9:.1f} without R1, {flops.with_r1 / 1e9:.1f} with; "
                  f"{flops.per_step / b / 1e9:.2f} GFLOP per image)")
            mean = {name: statistics.fmean(v) for name, v in times.items()}
            for name, seconds in mean.items():
                achieved = flops.per_step / seconds / 1e9
                precision, _, how = name.partition("+")
                peak = max(peaks[precision].values())
                print(f"  {name}: {seconds * 1e3:8.1f} ms/step {b / seconds:7.1f} img/s {achieved:7.1f} GFLOP/s = "
                      f"{100 * achieved / peak:5.1f}% of the {precision} peak ({peak:.1f})"
                      + (f"; {mean['fp32'] / seconds:.2f}x fp32's speed" if name != "fp32" and "fp32" in mean
                         else ""), flush=True)
                if how:
                    saved = mean[precision] - seconds
                    extra = first[name] - first[precision]
                    print(f"    {how}: first {warm} steps took {extra:.1f} s more than eager's (compiling); "
                          + (f"it pays back after {extra / saved:.0f} steps" if saved > 0 else "it never pays back"))
            if args.profile:
                for name, step in steps.items():
                    kinds = profile_step(step, images, timed + warm, cycle)
                    total = sum(kinds.values())
                    print(f"  where {name}'s step time goes (self CPU, {total * 1e3:.0f} ms): " + ", ".join(
                        f"{k} {100 * v / total:.0f}%" for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
