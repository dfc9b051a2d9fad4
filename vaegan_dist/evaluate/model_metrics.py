"""Every metric of one trained model on one held-out set, computed in batches.

The real images' side (evaluator features and predictions, Laplacian variance) is computed once per
held-out set (:class:`HeldOut`), so evaluating during training costs only the model's side each time.
Metrics that need an encoder (reconstructions) or a discriminator (Dis_l) are ``None`` for kinds without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from vaegan_dist.data.codec import to_unit_range
from vaegan_dist.data.manifest import DataError
from vaegan_dist.evaluate import metrics as m
from vaegan_dist.evaluate.evaluator import Evaluator
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
           attributes: torch.Tensor | None = None, attribute_names: Sequence[str] = ()) -> HeldOut:
        if len(images) <= PR_NEIGHBOURS:
            raise DataError(f"{where}: only {len(images)} images; the metrics need more than {PR_NEIGHBOURS}")
        features, logits = evaluator.features_and_logits(images, batch)
        lap = torch.cat([m.laplacian_variance(to_unit_range(c, evaluator.device)) for c in images.split(batch)])
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


def _batches(model: VAEGAN, held_out: HeldOut, device: torch.device, batch: int, generator: torch.Generator,
             reconstruct: bool, dis_l: bool):
    """Yields (samples, reconstructions or None, originals or None, Dis_l pair or None) per batch, in [-1, 1].
    A conditioned model generates each sample with the attributes of the held-out image in its place."""
    condition = held_out.condition(model)
    for start, chunk in zip(range(0, len(held_out), batch), held_out.images.split(batch)):
        y = None if condition is None else condition[start : start + len(chunk)].to(device)
        z = torch.randn(len(chunk), model.latent_dim, generator=generator).to(device)
        samples = model.decoder(z, y).float()
        recon = x = dis_pair = None
        if reconstruct:
            x = to_unit_range(chunk, device)
            recon = model.decoder(model.encoder(x, y)[0], y).float()
            if dis_l:
                dis_pair = (model.discriminator(recon, y)[1], model.discriminator(x, y)[1])
        yield samples, recon, x, dis_pair


@torch.no_grad()
def model_metrics(model: VAEGAN, evaluator: Evaluator, held_out: HeldOut, names: Sequence[str] = METRICS, *,
                  seed: int = 0, batch: int = 256, inception=None) -> dict[str, float | None]:
    """The metrics ``names`` of ``model`` against ``held_out``: as many samples from p(z) as held-out
    images, seeded; reconstructions of the held-out images. The model is put in eval mode and back."""
    unknown = set(names) - set(METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; known: {', '.join(METRICS)}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    reconstruct = model.can_reconstruct and bool(NEEDS_ENCODER & set(names))
    dis_l = reconstruct and "feature_mse" in names and model.discriminator is not None
    generator = torch.Generator().manual_seed(seed)
    sample_feats, sample_lap, recon_feats, recon_logits, fid_real, fid_fake = [], [], [], [], [], []
    pixel_se = feature_se = 0.0
    pixel_n = feature_n = 0
    try:
        for samples, recon, x, dis_pair in _batches(model, held_out, device, batch, generator, reconstruct, dis_l):
            feats, _ = evaluator.features_and_logits(samples, batch)
            sample_feats.append(feats)
            sample_lap.append(m.laplacian_variance(samples))
            if inception is not None and "fid" in names:
                fid_fake.append(inception(samples))
                fid_real.append(inception(to_unit_range(held_out.images[sum(map(len, fid_real)):][:len(samples)],
                                                        device)))
            if recon is not None:
                feats, logits = evaluator.features_and_logits(recon, batch)
                recon_feats.append(feats)
                recon_logits.append(logits)
                pixel_se += float((recon.double() - x.double()).square().sum())
                pixel_n += recon.numel()
                if dis_pair is not None:
                    feature_se += float((dis_pair[0].double() - dis_pair[1].double()).square().sum())
                    feature_n += dis_pair[0].numel()
    finally:
        model.train(was_training)

    samples_f = torch.cat(sample_feats)
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
        result["sharpness_ratio"] = m.sharpness_ratio(torch.cat(sample_lap), held_out.laplacian_var)
    if recon_feats:
        if "fd_recon" in names:
            result["fd_recon"] = m.frechet_distance(held_out.features, torch.cat(recon_feats))
        if "attr_agreement" in names:
            result["attr_agreement"] = m.attribute_agreement(held_out.logits, torch.cat(recon_logits))
        if "pixel_mse" in names:
            result["pixel_mse"] = pixel_se / pixel_n
        if feature_n:
            result["feature_mse"] = feature_se / feature_n
    if fid_fake:
        result["fid"] = m.frechet_distance(torch.cat(fid_real), torch.cat(fid_fake))
    return result
