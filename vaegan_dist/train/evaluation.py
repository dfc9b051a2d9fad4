"""Evaluation during training, on rank 0: the cheap metrics on a fixed held-out set every train.eval_every.

The held-out set is the first ``train.eval_samples`` images of the split the grids come from (valid when
the data has one), and its evaluator features are computed once. Only rank 0 evaluates; the other ranks
meet it at the report that follows (a Ray report is a barrier), never at a collective of their own, so
evaluation costs them the same wall time and nothing else.
"""

from __future__ import annotations

import time

import torch

from vaegan_dist.data.stream import first_images
from vaegan_dist.evaluate import CHEAP_METRICS, Evaluator, HeldOut, model_metrics
from vaegan_dist.model import VAEGAN
from vaegan_dist.train.job import TrainJob


class TrainingEvaluation:
    def __init__(self, job: TrainJob, device: torch.device):
        self.evaluator = Evaluator.from_state(job.evaluator, "the run's evaluator").to(device)
        images, attrs = first_images(job.grid_data, job.grid_split, job.cfg.train.eval_samples)
        self.held_out = HeldOut.of(images, self.evaluator, attributes=attrs, attribute_names=job.grid_data.attributes)
        self.seed = job.cfg.train.seed
        self.seconds = 0.0  # spent evaluating, for perf/eval_share
        self.tags = [f"eval/{k}" for k in CHEAP_METRICS]

    def __call__(self, model: VAEGAN) -> dict[str, float]:
        started = time.perf_counter()
        values = model_metrics(model, self.evaluator, self.held_out, CHEAP_METRICS, seed=self.seed)
        self.seconds += time.perf_counter() - started
        return {f"eval/{k}": v for k, v in values.items() if v is not None}

    def line(self, step: int, metrics: dict[str, float]) -> str:
        shown = " ".join(f"{k.removeprefix('eval/')} {v:.4g}" for k, v in metrics.items() if k.startswith("eval/"))
        return f"eval  step {step:7d} | {len(self.held_out)} held-out images | {shown}"
