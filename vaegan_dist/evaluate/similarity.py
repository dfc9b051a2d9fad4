"""Attribute similarity (the paper's section 4.2, its Table 1): how well attribute-conditioned models
generate faces to order.

Each test image's attributes y are given to the model with a random z; the evaluator (an attribute
classifier trained on real images, independent of the models) says which attributes the generated face has,
and that is compared with y. The reference row is the test set itself: the evaluator on the real images
against their labels, the score a perfect generator would get with this evaluator.

Scores, per image, over the attributes both the model and the evaluator know, with requested t = 2y - 1 in
{-1, 1} and predicted p = 2 * sigmoid(logit) - 1 in (-1, 1) (the evaluator's confidence, signed):

    cosine similarity   t . p / (|t| |p|)          higher is better, at most 1
    mean squared error  mean over attributes of (p - t)^2    lower is better, in [0, 4]

and the table shows their means over the test images.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from vaegan_dist.data.stream import first_images
from vaegan_dist.errors import CheckpointError, ConfigError
from vaegan_dist.evaluate.evaluator import Evaluator
from vaegan_dist.evaluate.model_metrics import reorder_attributes
from vaegan_dist.evaluate.records import SimilarityRecord, SimilarityRow
from vaegan_dist.evaluate.run import Trained

TEST_SET_ROW = "test set (real images)"


def signed_confidence(logits: torch.Tensor) -> torch.Tensor:
    """2 * sigmoid(logit) - 1 = tanh(logit / 2), the evaluator's prediction on the scale of t."""
    return torch.tanh(logits.double() / 2)


def similarity_scores(requested: torch.Tensor, logits: torch.Tensor) -> dict[str, float]:
    """requested 0/1 [N, A] against the evaluator's logits [N, A]: mean cosine similarity and mean MSE."""
    t = requested.double() * 2 - 1
    p = signed_confidence(logits)
    cosine = (t * p).sum(1) / (t.norm(dim=1) * p.norm(dim=1)).clamp(min=1e-12)
    mse = (p - t).square().mean(1)
    return {"cosine": float(cosine.mean()), "mse": float(mse.mean())}


def shared_attributes(model_attributes: Sequence[str], evaluator: Evaluator) -> list[str]:
    """The attributes a conditioned model can be asked for and the evaluator can judge, in the evaluator's order."""
    shared = [a for a in evaluator.attributes if a in model_attributes]
    if not shared:
        raise ConfigError("the model's attributes and the evaluator's have none in common")
    return shared


@torch.no_grad()
def generate_to_order(trained: Trained, labels: torch.Tensor, label_names: Sequence[str], seed: int,
                      batch: int = 256) -> torch.Tensor:
    """One face per row of ``labels`` (0/1, named ``label_names``), each from its own z ~ N(0, I)."""
    model = trained.model
    y = reorder_attributes(labels, label_names, model.attributes, "the test data")
    generator = torch.Generator().manual_seed(seed)
    device = next(model.parameters()).device
    out = []
    for chunk in y.split(batch):
        out.append(model.sample(len(chunk), generator=generator, y=chunk.to(device)).float().cpu())
    return torch.cat(out)


def parse_settings(settings: Sequence[str], attributes: Sequence[str]) -> dict[str, int]:
    """``--set NAME=0|1`` options -> {name: value}, each name one of the model's attributes."""
    chosen: dict[str, int] = {}
    for item in settings:
        name, sep, value = item.partition("=")
        if not sep or value.strip() not in ("0", "1"):
            raise ConfigError(f"--set {item!r}: expected NAME=0 or NAME=1")
        if name in chosen:
            raise ConfigError(f"--set {name!r}: given twice")
        if name not in attributes:
            raise ConfigError(f"--set {name!r}: the model has no such attribute; it has: {', '.join(attributes)}")
        chosen[name] = int(value)
    return chosen


def attributes_to_order(model_attributes: Sequence[str], labels: torch.Tensor, label_names: Sequence[str], n: int,
                        settings: dict[str, int]) -> torch.Tensor:
    """y for ``n`` generated faces: real images' attribute combinations (repeated if there are fewer), with the
    attributes in ``settings`` forced, so "Eyeglasses=1" gives plausible faces that all wear glasses."""
    y = reorder_attributes(labels, label_names, model_attributes, "the data").clone()
    y = y.repeat((n + len(y) - 1) // len(y), 1)[:n]
    for name, value in settings.items():
        y[:, list(model_attributes).index(name)] = value
    return y


def similarity_table(models: Sequence[Trained], *, split: str = "test", num: int = 2000, seed: int = 0
                     ) -> SimilarityRecord:
    """The table for ``models`` (all judged on the first one's data and evaluator), test-set row first."""
    first = models[0]
    evaluator, source = first.evaluator, first.sources[split]
    if evaluator is None:
        raise ConfigError("attribute similarity needs an evaluator")
    for m in models:
        if not m.model.conditioned:
            raise CheckpointError(f"{m.checkpoint}: this {m.model.kind} model is not conditioned on attributes, so it "
                                  "cannot generate to order; train one with model.condition=attributes")
        if m.cfg.data.image_size != first.cfg.data.image_size:
            raise ConfigError(f"{m.checkpoint}: {m.cfg.data.image_size} px images, but {first.checkpoint} has "
                              f"{first.cfg.data.image_size} px: compare models of one image size")
    images, labels = first_images(source, split, num)
    names = shared_attributes(first.model.attributes, evaluator)
    for m in models[1:]:
        names = [a for a in names if a in m.model.attributes]
    wanted = reorder_attributes(labels, source.attributes, names, f"{source.where} split {split!r}")
    columns = [evaluator.attributes.index(a) for a in names]

    _, real_logits = evaluator.features_and_logits(images)
    rows = [SimilarityRow(name=TEST_SET_ROW, **similarity_scores(wanted, real_logits[:, columns]))]
    for m in models:
        generated = generate_to_order(m, labels, source.attributes, seed)
        _, logits = evaluator.features_and_logits(generated)
        rows.append(SimilarityRow(name=m.name, model_kind=m.model.kind, step=m.step, checkpoint=str(m.checkpoint),
                                  **similarity_scores(wanted, logits[:, columns])))
    return SimilarityRecord(split=split, num=len(images), seed=seed, attributes=names, rows=rows)


def similarity_text(table: SimilarityRecord) -> str:
    lines = [f"attribute similarity on {table.num} {table.split} images, {len(table.attributes)} attributes "
             "(requested vs. what the evaluator sees):",
             f"  {'model':<28} {'kind':<8} {'cosine':>8} {'mse':>8}",
             ]
    for row in table.rows:
        lines.append(f"  {row.name[:28]:<28} {row.model_kind or '-':<8} {row.cosine:>8.4f} {row.mse:>8.4f}")
    lines.append("  (cosine: higher is better, at most 1; mse: lower is better, 0..4; the test-set row is the "
                 "evaluator on real images: the best a generator can score)")
    return "\n".join(lines)
