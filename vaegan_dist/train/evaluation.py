"""Evaluation during training, shared by every rank: the cheap metrics on a fixed held-out set every
train.eval_every.

The held-out set is the first ``train.eval_samples`` images of the split the grids come from (valid when
the data has one); its evaluator features are computed once, each rank its share of the batches. At each
evaluation rank 0's shown weights (the weight average, or the live model) are broadcast into a copy on the
other ranks, each rank generates and scores its share of the batches (:mod:`vaegan_dist.evaluate.shares`), and
rank 0 computes the metrics from all of them: the same numbers as one process at the same N and seed, in
1/W of the time (bench/RESULTS.md, "Evaluation on every rank").
"""

from __future__ import annotations

import time

import torch
import torch.distributed as dist

from vaegan_dist.data.stream import first_images
from vaegan_dist.evaluate import CHEAP_METRICS, Evaluator, HeldOut, model_metrics
from vaegan_dist.evaluate.shares import process_group_share
from vaegan_dist.model import VAEGAN
from vaegan_dist.train.ema import AVERAGED, generator_copy
from vaegan_dist.train.job import TrainJob


class TrainingEvaluation:
    """Made on every rank (a collective: the held-out features are shared)."""

    def __init__(self, job: TrainJob, device: torch.device, model: VAEGAN):
        self.share = process_group_share()
        self.evaluator = Evaluator.from_state(job.evaluator, "the run's evaluator").to(device)
        images, attrs = first_images(job.grid_data, job.grid_split, job.cfg.train.eval_samples)
        self.held_out = HeldOut.of(images, self.evaluator, attributes=attrs, attribute_names=job.grid_data.attributes,
                                   share=self.share)
        self.seed = job.cfg.train.seed
        self.seconds = 0.0  # spent evaluating, for perf/eval_share
        self.tags = [f"eval/{k}" for k in CHEAP_METRICS]
        # The other ranks score rank 0's shown weights, received into a copy of their own.
        self.received = generator_copy(model) if self.share.rank != 0 else None

    def __call__(self, shown: VAEGAN) -> dict[str, float] | None:
        """Every rank calls it at the same step; rank 0 gets the metrics, the others None."""
        started = time.perf_counter()
        if self.share.world > 1:
            shown = receive_rank0s(shown, self.received)
        values = model_metrics(shown, self.evaluator, self.held_out, CHEAP_METRICS, seed=self.seed, share=self.share)
        self.seconds += time.perf_counter() - started
        return None if values is None else {f"eval/{k}": v for k, v in values.items() if v is not None}

    def line(self, step: int, metrics: dict[str, float]) -> str:
        shown = " ".join(f"{k.removeprefix('eval/')} {v:.4g}" for k, v in metrics.items() if k.startswith("eval/"))
        return f"eval  step {step:7d} | {len(self.held_out)} held-out images | {shown}"


def receive_rank0s(shown: VAEGAN, received: VAEGAN | None) -> VAEGAN:
    """Rank 0's ``shown`` encoder and decoder on every rank: rank 0 sends its own (``received`` None), the others
    receive them into ``received``, a copy of their own. The replicas' weights agree under DDP; their batch-norm
    statistics, and the weight average, which only rank 0 keeps, do not."""
    target = shown if received is None else received
    for name in AVERAGED:
        network = getattr(target, name)
        if network is not None:
            for tensor in network.state_dict().values():
                dist.broadcast(tensor, src=0)
    return target
