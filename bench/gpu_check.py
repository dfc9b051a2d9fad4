"""GPU readiness in one run (called by bench/gpu_check.sh): on a machine with one CUDA GPU it finishes in under
8 minutes and prints one table; ``--dry-run`` checks every part that does not need a GPU, here on CPU.

    bash bench/gpu_check.sh            # on the GPU machine; record the table in bench/RESULTS.md
    bash bench/gpu_check.sh --dry-run  # anywhere: the same parts, tiny and on CPU (a test runs this)

Rows:
  1. the GPU tests: the real Triton kernels against the PyTorch reference, forward and backward
     (tests/unit/test_kernels_triton.py without the interpreter), and the training step's own tests;
  2. a training step with the equilibrium trick, the adaptive gamma, a lazy R1 step and the weight average
     under ``torch.cuda.set_sync_debug_mode("error")``: any host synchronisation is an error;
  3. the fused kernels against eager and torch.compile, with the share of the card's memory bandwidth;
  4. celeba64 step images/s, ours against the straightforward step, both in bf16;
  5. the celeba64 step in bf16 against the card's peak: counted FLOPs per step, achieved TFLOP/s, and the share of
     the tensor cores' measured bf16 peak (a large matmul and convolution) and of the datasheet's dense figure;
  6. time to quality at 64 px on the built-in faces, 5 minutes: the celeba64-recipe preset against its networks
     with the recipe options undone (bench/time_to_quality.py --preset celeba64-recipe).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def _run(command: list[str], env: dict[str, str] | None = None, timeout: float = 300) -> tuple[bool, str]:
    done = subprocess.run(command, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout, check=False)
    out = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode == 0, out[-1] if out else ""


def gpu_tests(dry: bool) -> tuple[bool, str]:
    files = ["tests/unit/test_kernels_triton.py", "tests/unit/test_train_step.py", "tests/unit/test_metrics.py"]
    if dry:  # collected, importable, and the step tests pass on CPU
        ok, line = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", files[1]])
        return ok, f"CPU: {line}"
    return _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files],
                env={"TRITON_INTERPRET": "0"})


def step_without_sync(dry: bool) -> tuple[bool, str]:
    import torch

    from vaegan_dist.config import build_config
    from vaegan_dist.model import build_model
    from vaegan_dist.train.ema import WeightAverage
    from vaegan_dist.train.optim import build_optimizers
    from vaegan_dist.train.runtime import runtime_for
    from vaegan_dist.train.step import TrainStep

    device = torch.device("cpu" if dry else "cuda")
    cfg = build_config("smoke", ["objective.equilibrium=true", "objective.adaptive_gamma=true",
                                 "objective.r1_gamma=1", "objective.r1_every=2", "optim.ema_halflife_kimg=1"])
    torch.manual_seed(0)
    model = build_model(cfg.model, 32).to(device, memory_format=torch.channels_last)
    average = WeightAverage(model, 1.0, 0.05)
    step = TrainStep(model.networks(), build_optimizers(model, cfg.optim), cfg, runtime_for(not dry, device),
                     noise_seed=0, ema=(average, model))
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, device=device)
    step(images, 0)  # optimiser state is created on the first step
    if dry:
        step(images, 2)
        return True, "CPU: ran (no sync mode without CUDA; tests/unit/test_train_step.py counts host reads)"
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for i in range(2, 6):
            step(images, i)
    except RuntimeError as err:
        return False, f"synchronised: {str(err).splitlines()[0][:150]}"
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return True, "4 steps (2 with R1), no host synchronisation"


def fused_kernels(dry: bool) -> tuple[bool, str]:
    ok, _ = _run([sys.executable, str(HERE / "fused_kernels.py")], env={"TRITON_INTERPRET": "0"})
    return ok, "bytes per element counted (timings need a GPU)" if dry else "see the fused_kernels output above"


def step_throughput(dry: bool) -> tuple[bool, str]:
    sys.path.insert(0, str(HERE))
    from step_throughput import bench

    shape, device, steps = ("smoke", "cpu", 1) if dry else ("celeba64", "cuda", 20)
    r = bench(shape, steps, None, device)
    ours, plain = r["img_s"]["ours_channels_last"], r["img_s"]["straightforward_nchw"]
    return True, f"{shape} on {device}: ours {ours:.0f} img/s, straightforward {plain:.0f} img/s ({ours / plain:.2f}x)"


# Dense bf16 tensor-core TFLOP/s from the vendors' datasheets (no sparsity), for the row's second share only:
# the share itself is of the peak measured in the same run. The first pattern that matches the device's name wins.
DATASHEET_BF16_TFLOPS = ((r"H200", 989.0), (r"H100.*PCIe", 756.0), (r"H100", 989.0), (r"A100", 312.0),
                         (r"L40S", 362.0), (r"\bL4\b", 121.0), (r"\bA10\b", 125.0))


def step_against_peak(dry: bool) -> tuple[bool, str]:
    import statistics

    import torch

    from vaegan_dist.config import build_config
    from vaegan_dist.model import build_model
    from vaegan_dist.objectives import model_kind
    from vaegan_dist.train.flops import count_step_flops
    from vaegan_dist.train.optim import build_optimizers
    from vaegan_dist.train.peak import measure_peak
    from vaegan_dist.train.runtime import runtime_for
    from vaegan_dist.train.step import TrainStep

    shape, device, steps = ("smoke", torch.device("cpu"), 2) if dry else ("celeba64", torch.device("cuda"), 20)
    cfg = build_config(shape, [])
    s, b = cfg.data.image_size, cfg.data.batch_size
    torch.manual_seed(0)
    model = build_model(cfg.model, s).to(device, memory_format=torch.channels_last)
    flops = count_step_flops(model.networks(), model_kind(), cfg.objective, cfg.model.latent_dim, s, b)
    runtime = runtime_for(not dry, device, "fp32" if dry else "bf16")
    step = TrainStep(model.networks(), build_optimizers(model, cfg.optim), cfg, runtime, noise_seed=0)
    images = torch.randint(0, 256, (b, 3, s, s), dtype=torch.uint8, device=device)
    sync = torch.cuda.synchronize if not dry else (lambda: None)
    times = []
    for i in range(steps + 2):
        sync()
        started = time.perf_counter()
        step(images, i)
        sync()
        if i >= 2:
            times.append(time.perf_counter() - started)
    achieved = flops.per_step / statistics.median(times) / 1e12
    dtype = runtime.autocast_dtype or torch.float32
    peak = max(measure_peak(device, dtype).values()) / 1e3
    name = "CPU" if dry else torch.cuda.get_device_name()
    sheet = next((v for pattern, v in DATASHEET_BF16_TFLOPS if re.search(pattern, name)), None)
    sheet_share = f", {100 * achieved / sheet:.1f}% of the datasheet's {sheet:.0f}" if sheet and not dry else ""
    return True, (f"{shape} batch {b} {str(dtype).removeprefix('torch.')}: {flops.per_step / 1e9:.0f} GFLOP/step, "
                  f"{achieved:.2f} TFLOP/s = {100 * achieved / peak:.1f}% of the measured peak {peak:.2f}"
                  f"{sheet_share}")


def time_to_quality(dry: bool, root: Path) -> tuple[bool, str]:
    if dry:
        extra = ["train.workers=0", "data.synthetic_samples=64", "model.width=0.125", "train.eval_samples=16",
                 f"data.cache_dir={root / 'data'}", "data.loader_workers=0", "data.image_size=32",
                 "data.batch_size=8", "model.latent_dim=8", "model.encoder_fc=32", "model.discriminator_fc=16"]
        args = ["--preset", "celeba64-recipe", "--recipes", "preset", "--steps", "2", "--eval-every", "1",
                "--budget", "1"]
    else:
        # celeba64-recipe (the paper's networks and batch with the recipe that learns at 64 px) against the same
        # networks with the recipe options undone ("paper"), on the built-in faces at 64 px
        # 8,000 faces (the faces64 preset's): their data and 64 px evaluator, made by the first run, take about a
        # minute on a GPU instead of several for the preset's 20,000
        extra = ["train.workers=1", "train.device=cuda", "data.batch_size=64", "train.eval_samples=1000",
                 "data.loader_workers=4", "data.synthetic_samples=8000"]
        args = ["--preset", "celeba64-recipe", "--recipes", "paper", "preset", "--steps", "3000", "--eval-every",
                "250", "--budget", "2.5"]
    ok, line = _run([sys.executable, str(HERE / "time_to_quality.py"), *args, "--root", str(root / "ttq"),
                     "--out", str(root / "ttq.png"), "--extra", *extra], timeout=600)
    return ok, line


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dry-run", action="store_true", help="every part that needs no GPU, small, on CPU")
    parser.add_argument("--root", type=Path, default=Path("/tmp/gpu-check"))
    args = parser.parse_args()
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here; run with --dry-run to check the rest", file=sys.stderr)
        return 2
    args.root.mkdir(parents=True, exist_ok=True)
    checks = [("GPU tests (Triton kernels vs reference, step)", lambda: gpu_tests(args.dry_run)),
              ("a step with no host synchronisation", lambda: step_without_sync(args.dry_run)),
              ("fused kernels vs eager / torch.compile", lambda: fused_kernels(args.dry_run)),
              ("step img/s, ours vs straightforward (bf16)", lambda: step_throughput(args.dry_run)),
              ("celeba64 step vs the bf16 peak", lambda: step_against_peak(args.dry_run)),
              ("time to quality", lambda: time_to_quality(args.dry_run, args.root))]
    rows, failed = [], 0
    for name, check in checks:
        started = time.perf_counter()
        try:
            ok, detail = check()
        except Exception as err:  # one row per check: a failure is reported, the others still run
            ok, detail = False, f"{type(err).__name__}: {str(err).splitlines()[0][:150] if str(err) else ''}"
        failed += not ok
        rows.append(f"| {name} | {'ok' if ok else 'FAILED'} | {time.perf_counter() - started:6.1f} s | {detail} |")
    device = "dry run on CPU" if args.dry_run else torch.cuda.get_device_name()
    print(f"\n{device}, torch {torch.__version__}\n| check | result | time | figures |\n|---|---|---|---|")
    print("\n".join(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
