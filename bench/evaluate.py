"""Cost of evaluation: images/s of `model_metrics`, and the share of training time that train.eval_every
takes at each preset's defaults, measured side by side in one run.

    python bench/evaluate.py                      # smoke and celeba64 shapes on this machine
    python bench/evaluate.py --presets smoke --repeats 5

share = t_eval / (eval_every * t_step + t_eval), where t_step is one training step of the preset (its
batch, its networks, its objective) and t_eval one evaluation of the cheap metrics on eval_samples
held-out images (and as many samples). Steps and evaluations alternate so machine noise hits both alike.
The evaluator is randomly initialised: its cost does not depend on its weights. Goal: share <= 5%.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vaegan_dist.config import build_config
from vaegan_dist.evaluate import CHEAP_METRICS, METRICS, Evaluator, HeldOut, model_metrics
from vaegan_dist.evaluate.classifier import AttributeClassifier
from vaegan_dist.model import build_model
from vaegan_dist.train.optim import build_optimizers
from vaegan_dist.train.runtime import runtime_for
from vaegan_dist.train.step import TrainStep


def bench(preset: str, repeats: int, device: torch.device) -> None:
    cfg = build_config(preset, [])
    size, batch = cfg.data.image_size, cfg.data.batch_size
    torch.manual_seed(0)
    runtime = runtime_for(device.type == "cuda", device)
    model = build_model(cfg.model, size).to(device, memory_format=runtime.memory_format)
    step = TrainStep(model.networks(), build_optimizers(model, cfg.optim), cfg, runtime, noise_seed=0)
    evaluator = Evaluator(AttributeClassifier(size, 40).eval(), [f"a{i}" for i in range(40)], size, "", "",
                          {}).to(device)
    images = torch.randint(0, 256, (cfg.train.eval_samples, 3, size, size), dtype=torch.uint8)
    held_out = HeldOut.of(images, evaluator)
    train_batch = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8)

    def timed(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - started

    step(train_batch, 0)  # warm-up
    model_metrics(model, evaluator, held_out, CHEAP_METRICS)
    steps, cheap, full = [], [], []
    for i in range(repeats):
        steps.append(statistics.median(timed(lambda: step(train_batch, i)) for _ in range(3)))
        cheap.append(timed(lambda: model_metrics(model, evaluator, held_out, CHEAP_METRICS)))
        full.append(timed(lambda: model_metrics(model, evaluator, held_out, METRICS)))
    t_step, t_cheap, t_full = (statistics.median(v) for v in (steps, cheap, full))
    every = cfg.train.eval_every
    share = t_cheap / (every * t_step + t_cheap)
    n = cfg.train.eval_samples
    print(f"{preset:9s} {size:3d}px n={n:5d} | step {t_step * 1e3:8.1f} ms | eval (cheap) {t_cheap:6.2f} s = "
          f"{2 * n / t_cheap:7.0f} img/s | evaluate (all) {t_full:6.2f} s = {2 * n / t_full:7.0f} img/s | "
          f"eval_every={every}: {share:6.2%} of training time {'(goal <= 5%: met)' if share <= 0.05 else '(over 5%)'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["smoke", "celeba64"])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device: {device}, torch {torch.__version__}, threads {torch.get_num_threads()}; img/s counts samples "
          "and held-out images generated and scored")
    for preset in args.presets:
        bench(preset, args.repeats, device)


if __name__ == "__main__":
    main()
