"""Every metric of one trained model on one held-out set, computed in batches.

The real images' side (evaluator features and predictions, Laplacian variance) is computed once per
held-out set (:class:`HeldOut`), so evaluating during training costs only the model's side each time.
Metrics that need an encoder (reconstructions) or a discriminator (Dis_l) are ``None`` for kinds without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from vaegan_dist.data.codec import to_unit_range
from vaegan_dist.data.manifest import DataError
from vaegan_dist.evaluate import metrics as m
from vaegan_dist.evaluate.evaluator import Evaluator
from vaegan_dist.evaluate.shares import ONE_PROCESS, Share
from vaegan_dist.model import VAEGAN

# The keys of `vaegan-dist evaluate`'s JSON, in table order.
METRICS: tuple[str, ...] = ("fd", "kid", "kid_std", "fd_recon", "attr_agreement", "pixel_mse", "feature_mse",
                            "sharpness_ratio", "precision", "recall", "fid")
# What training computes every train.eval_every steps: no Dis_l pass, no Inception.
CHEAP_METRICS: tuple[str, ...] = ("fd", "kid", "kid_std", "fd_recon", "attr_agreement", "sharpness_ratio",
                                  "precision", "recall")
# kid_std: the spread of kid over its subsets, the population standard deviation as torchmetrics reports it
# (a smaller one is a surer estimate).
LOWER_IS_BETTER = {"fd", "kid", "kid_std", "fd_recon", "pixel_mse", "feature_mse", "fid"}
NEEDS_ENCODER = {"fd_recon", "attr_agreement", "pixel_mse", "feature_mse"}


def better(name: str) -> Literal["lower", "higher", "one"]:
    """Which way a metric is better, the one place that says it (the tables, the report, a sweep's mode):
    sharpness_ratio is best at 1 (as sharp as the data), the rest by LOWER_IS_BETTER."""
    if name == "sharpness_ratio":
        return "one"
    return "lower" if name in LOWER_IS_BETTER else "higher"


def better_note(name: str) -> str:
    """``better(name)`` in words, as the tables print it beside a value."""
    return {"one": "1 = as sharp as the data", "lower": "lower is better", "higher": "higher is better"}[better(name)]
PR_NEIGHBOURS = 3  # k of Kynkaanniemi et al.'s precision and recall (their default)


@dataclass
class HeldOut:
    """A fixed set of real images and what the evaluator makes of them."""

    images: torch.Tensor  # uint8 [N, 3, S, S], on the CPU
    features: torch.Tensor  # [N, F]
    logits: torch.Tensor  # [N, A]
    laplacian_var: torch.Tensor  # [N]
    # The images' own attributes (0/1 [N, A]) and their names: what a conditioned model generates from.
    attributes: torch.Tensor | None = None
    attribute_names: tuple[str, ...] = field(default=())

    @classmethod
    def of(cls, images: torch.Tensor, evaluator: Evaluator, batch: int = 256, where: str = "the held-out set",
           attributes: torch.Tensor | None = None, attribute_names: Sequence[str] = (),
           share: Share = ONE_PROCESS) -> HeldOut:
        """``share``: the ranks of a process group each compute the evaluator's view of their share of the batches,
        and every rank gets all of it."""
        if len(images) <= PR_NEIGHBOURS:
            raise DataError(f"{where}: only {len(images)} images; the metrics need more than {PR_NEIGHBOURS}")
        records = []
        for index, chunk in enumerate(images.split(batch)):
            if share.mine(index):
                features, logits = evaluator.features_and_logits(chunk, batch)
                lap = m.laplacian_variance(to_unit_range(chunk, evaluator.device))
                records.append({"index": index, "features": features.cpu(), "logits": logits.cpu(), "lap": lap.cpu()})
        records = share.everywhere(records)
        device = evaluator.device
        features, logits, lap = (torch.cat([r[k] for r in records]).to(device) for k in ("features", "logits", "lap"))
        return cls(images.cpu(), features, logits, lap, None if attributes is None else attributes.cpu(),
                   tuple(attribute_names))

    def __len__(self) -> int:
        return len(self.images)

    def condition(self, model: VAEGAN) -> torch.Tensor | None:
        """The held-out images' attributes in the order a conditioned model's y follows; None for others."""
        if not model.conditioned:
            return None
        if self.attributes is None:
            raise DataError("this model is conditioned on attributes, and the held-out images have none")
        return reorder_attributes(self.attributes, self.attribute_names, model.attributes, "the held-out data")


def reorder_attributes(values: torch.Tensor, names: Sequence[str], wanted: Sequence[str], where: str) -> torch.Tensor:
    """Columns of ``values`` (named ``names``) picked and ordered as ``wanted``: data sets and models may list
    the same attributes in another order, and a missing one is an error, never a silently zero column."""
    index = {n: i for i, n in enumerate(names)}
    missing = [n for n in wanted if n not in index]
    if missing:
        raise DataError(f"{where} lacks attributes the model needs: {', '.join(missing[:8])}"
                        + (f" (+{len(missing) - 8} more)" if len(missing) > 8 else ""))
    return values[:, [index[n] for n in wanted]]


def _batch_records(model: VAEGAN, evaluator: Evaluator, held_out: HeldOut, names: Sequence[str], seed: int,
                   batch: int, inception, share: Share) -> list[dict[str, Any]]:
    """What this process's share of the batches gives, one record per batch (CPU tensors and sums): the samples'
    evaluator features and sharpness, the reconstructions' features and logits and squared errors, and the
    Inception features. Every batch's z is drawn, mine or not, so that each is what one process draws. A conditioned
    model generates each sample with the attributes of the held-out image in its place."""
    device = next(model.parameters()).device
    reconstruct = model.can_reconstruct and bool(NEEDS_ENCODER & set(names))
    dis_l = reconstruct and "feature_mse" in names and model.discriminator is not None
    condition = held_out.condition(model)
    generator = torch.Generator().manual_seed(seed)
    records = []
    for index, (start, chunk) in enumerate(zip(range(0, len(held_out), batch), held_out.images.split(batch))):
        z = torch.randn(len(chunk), model.latent_dim, generator=generator)
        if not share.mine(index):
            continue
        y = None if condition is None else condition[start : start + len(chunk)].to(device)
        samples = model.decoder(z.to(device), y).float()
        feats, _ = evaluator.features_and_logits(samples, batch)
        record: dict[str, Any] = {"index": index, "sample_feats": feats.cpu(),
                                  "sample_lap": m.laplacian_variance(samples).cpu()}
        if inception is not None and "fid" in names:
            record["fid_fake"] = inception(samples).cpu()
            record["fid_real"] = inception(to_unit_range(chunk, device)).cpu()
        if reconstruct:
            x = to_unit_range(chunk, device)
            recon = model.decoder(model.encoder(x, y)[0], y).float()
            feats, logits = evaluator.features_and_logits(recon, batch)
            record.update(recon_feats=feats.cpu(), recon_logits=logits.cpu(),
                          pixel_se=float((recon.double() - x.double()).square().sum()), pixel_n=recon.numel())
            if dis_l:
                fake, real = model.discriminator(recon, y)[1], model.discriminator(x, y)[1]
                record.update(feature_se=float((fake.double() - real.double()).square().sum()), feature_n=fake.numel())
        records.append(record)
    return records


@torch.no_grad()
def model_metrics(model: VAEGAN, evaluator: Evaluator, held_out: HeldOut, names: Sequence[str] = METRICS, *,
                  seed: int = 0, batch: int = 256, inception=None,
                  share: Share = ONE_PROCESS) -> dict[str, float | None] | None:
    """The metrics ``names`` of ``model`` against ``held_out``: as many samples from p(z) as held-out
    images, seeded; reconstructions of the held-out images. The model is put in eval mode and back.

    ``share``: the ranks of a process group (every one holding the same weights) each score their share of the
    batches; the metrics are computed once, on rank 0, and are those of one process; the other ranks get None."""
    unknown = set(names) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {', '.join(METRICS)}")
    was_training = model.training
    model.eval()
    try:
        records = _batch_records(model, evaluator, held_out, names, seed, batch, inception, share)
    finally:
        model.train(was_training)
    records = share.on_rank0(records)
    return None if records is None else _metrics(records, held_out, names, seed, evaluator.device)


def _metrics(records: list[dict[str, Any]], held_out: HeldOut, names: Sequence[str], seed: int,
             device: torch.device) -> dict[str, float | None]:
    """The metrics from every batch's record, in batch order."""

    def joined(key: str) -> torch.Tensor:
        return torch.cat([r[key] for r in records]).to(device)

    samples_f = joined("sample_feats")
    result: dict[str, float | None] = dict.fromkeys(names)
    if "fd" in names:
        result["fd"] = m.frechet_distance(held_out.features, samples_f)
    if "kid" in names or "kid_std" in names:
        kid, kid_std = m.kernel_distance(held_out.features, samples_f, seed=seed)
        result.update({k: v for k, v in (("kid", kid), ("kid_std", kid_std)) if k in names})
    if "precision" in names or "recall" in names:
        precision, recall = m.precision_recall(held_out.features, samples_f, PR_NEIGHBOURS)
        result.update({k: v for k, v in (("precision", precision), ("recall", recall)) if k in names})
    if "sharpness_ratio" in names:
        result["sharpness_ratio"] = m.sharpness_ratio(joined("sample_lap"), held_out.laplacian_var)
    if "recon_feats" in records[0]:
        if "fd_recon" in names:
            result["fd_recon"] = m.frechet_distance(held_out.features, joined("recon_feats"))
        if "attr_agreement" in names:
            result["attr_agreement"] = m.attribute_agreement(held_out.logits, joined("recon_logits"))
        if "pixel_mse" in names:
            result["pixel_mse"] = sum(r["pixel_se"] for r in records) / sum(r["pixel_n"] for r in records)
        if "feature_se" in records[0]:
            result["feature_mse"] = sum(r["feature_se"] for r in records) / sum(r["feature_n"] for r in records)
    if "fid_fake" in records[0]:
        result["fid"] = m.frechet_distance(joined("fid_real"), joined("fid_fake"))
    return result
