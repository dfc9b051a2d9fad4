"""Knowing whether a model is any good: the evaluator (an attribute classifier trained on the data's own
labels), the metrics in its feature space, and every metric of one model on one held-out set."""

from vaegan_dist.evaluate.evaluator import Evaluator, cached_evaluator_path, load_evaluator
from vaegan_dist.evaluate.model_metrics import (
    CHEAP_METRICS,
    LOWER_IS_BETTER,
    METRICS,
    HeldOut,
    better,
    better_note,
    model_metrics,
)

__all__ = ["Evaluator", "load_evaluator", "cached_evaluator_path", "HeldOut", "model_metrics", "METRICS",
           "CHEAP_METRICS", "LOWER_IS_BETTER", "better", "better_note"]
