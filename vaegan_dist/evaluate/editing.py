"""``vaegan-dist edit``: add or remove attributes on test faces or a user's photos with attribute vectors,
as a grid (the paper's figure: rows = images, columns = original, reconstruction, one edit per scale) and
as a score: per attribute and scale, the share of the images whose attribute the edit changed, according
to the evaluator (an attribute classifier trained on the data, independent of the model).

A positive scale adds the attribute: the candidates are the images the evaluator says lack it, and the
score is the share of their edits it says have it. A negative scale removes it: candidates have it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from vaegan_dist.atomic import check_output_file
from vaegan_dist.data.codec import to_unit_range
from vaegan_dist.data.stream import first_images
from vaegan_dist.data.user_images import load_user_images
from vaegan_dist.errors import CheckpointError, ConfigError
from vaegan_dist.evaluate.attribute_vectors import PAPER_IMAGES, edit, vectors_for
from vaegan_dist.evaluate.evaluator import Evaluator
from vaegan_dist.evaluate.records import EditRecord, EditRow, ReconstructionRow
from vaegan_dist.evaluate.run import Trained
from vaegan_dist.model import VAEGAN

DEFAULT_SCALES = (-1.0, 1.0, 2.0)
MAX_SCALE = 100.0


@dataclass
class EditResult:
    grid: torch.Tensor  # [rows * columns, 3, S, S] in [-1, 1], row-major
    columns: int
    record: EditRecord  # the scores


def check_editable(model: VAEGAN, checkpoint: Path) -> None:
    """Attribute vectors live in the latent space of an unconditioned model with an encoder."""
    if model.encoder is None:
        raise CheckpointError(f"{checkpoint}: a {model.kind!r} model has no encoder, so it has no latent "
                              "codes to edit; attribute vectors need vae, vae_disl or vaegan")
    if model.conditioned:
        raise CheckpointError(f"{checkpoint}: an attribute-conditioned model takes its attributes as y, "
                              "not as latent vectors; generate faces with an attribute with `vaegan-dist sample "
                              "--set NAME=1`")


def check_scales(scales: Sequence[float]) -> tuple[float, ...]:
    for s in scales:
        if not (abs(s) <= MAX_SCALE) or s == 0:  # NaN fails the first test
            raise ConfigError(f"--scale {s}: must be non-zero and within +-{MAX_SCALE:g} (0 is the reconstruction, "
                              "shown anyway)")
    if len(set(scales)) != len(scales):
        raise ConfigError(f"--scale: {list(scales)} repeats a value")
    return tuple(sorted(scales))


def has_attribute(evaluator: Evaluator, images: torch.Tensor, index: int) -> torch.Tensor:
    """The evaluator's yes/no for one attribute on images (uint8 or [-1, 1])."""
    _, logits = evaluator.features_and_logits(images)
    return logits[:, index] > 0


Reads = tuple[torch.Tensor, torch.Tensor]  # the evaluator's yes/no on the originals and on their reconstructions


def reads_of(evaluator: Evaluator | None, name: str, originals: torch.Tensor, recon: torch.Tensor) -> Reads | None:
    """The evaluator's read of ``name`` on the originals and on the plain reconstructions; None when nothing
    judges the attribute."""
    if evaluator is None or name not in evaluator.attributes:
        return None
    index = evaluator.attributes.index(name)
    return has_attribute(evaluator, originals, index), has_attribute(evaluator, recon, index)


def score(evaluator: Evaluator | None, name: str, originals: torch.Tensor, recon: torch.Tensor, edits: torch.Tensor,
          scales: Sequence[float], reads: Reads | None = None) -> list[EditRow]:
    """Per scale: candidates (lacking the attribute for a positive scale, having it for a negative one, on the
    original image), how many of their edits the evaluator judges changed, and ``baseline``: the share of
    candidates whose plain reconstruction it already judges changed. A model that loses a small detail in
    every reconstruction "removes" it without any vector; the baseline says how much of a score is that.
    ``vector_fraction`` is the vector's own effect: among images whose reconstruction still shows the
    original state, the share whose edit the evaluator judges changed. ``reads``: :func:`reads_of`, if known."""
    if reads is None:
        reads = reads_of(evaluator, name, originals, recon)
    if evaluator is None or reads is None:
        return [EditRow(attribute=name, scale=s, candidates=None, changed=None, fraction=None) for s in scales]
    index = evaluator.attributes.index(name)
    before, reconstructed = reads
    rows = []
    for j, s in enumerate(scales):
        after = has_attribute(evaluator, edits[:, j], index)
        candidates = ~before if s > 0 else before
        changed = candidates & (after if s > 0 else ~after)
        already = candidates & (reconstructed if s > 0 else ~reconstructed)
        kept = candidates & ~already  # the reconstruction still has the original state
        n, k = int(candidates.sum()), int(kept.sum())
        rows.append(EditRow(attribute=name, scale=s, candidates=n, changed=int(changed.sum()),
                            fraction=int(changed.sum()) / n if n else None,
                            baseline=int(already.sum()) / n if n else None,
                            vector_fraction=int((kept & changed).sum()) / k if k else None))
    return rows


def reconstruction_keeps(name: str, reads: Reads) -> ReconstructionRow:
    """How often the plain reconstruction changes the read of ``name``, both ways: losses among the images
    that have it, gains among those that lack it (a score's ``baseline`` counts one of the two)."""
    before, reconstructed = reads
    lost, gained = int((before & ~reconstructed).sum()), int((~before & reconstructed).sum())
    having = int(before.sum())
    return ReconstructionRow(attribute=name, having=having, lost=lost, lacking=len(before) - having, gained=gained,
                             changed_fraction=(lost + gained) / len(before) if len(before) else None)


def run_edit(trained: Trained, attributes: Sequence[str], scales: Sequence[float], *, split: str = "test",
             images: Sequence[str] = (), num: int = 256, show: int = 8, vector_images: int = PAPER_IMAGES,
             batch: int = 128, log=print) -> EditResult:
    """Edit ``num`` images of ``split`` (or the files ``images``) with each attribute's vector at each scale."""
    model = trained.model
    check_editable(model, trained.checkpoint)
    if not attributes:
        raise ConfigError("--attribute: name at least one attribute to edit")
    scales = check_scales(scales)
    unknown = [a for a in attributes if a not in trained.sources["train"].attributes]
    if unknown:
        raise ConfigError(f"--attribute {unknown[0]!r}: the data has no such attribute; it has: "
                          f"{', '.join(trained.sources['train'].attributes)}")
    if images:  # the user's files are checked before minutes of encoding
        originals = load_user_images(images, trained.cfg.data.image_size)
        described = f"{len(images)} file{'s' if len(images) != 1 else ''}"
    else:
        originals, _ = first_images(trained.sources[split], split, num)
        described = f"{split} split of {trained.sources[split].where}"
    vectors = vectors_for(model, trained.checkpoint, trained.sources["train"], "train", vector_images, log=log)
    chosen = {name: vectors.vector(name) for name in dict.fromkeys(attributes)}
    device = next(model.parameters()).device
    results: list[EditRow] = []
    reconstructions: list[ReconstructionRow] = []
    blocks = []
    for name, vector in chosen.items():
        recon_parts, edit_parts = [], []
        for chunk in originals.split(batch):
            recon, edited = edit(model, to_unit_range(chunk, device), vector, scales)
            recon_parts.append(recon.float().cpu())
            edit_parts.append(edited.float().cpu())
        recon, edited = torch.cat(recon_parts), torch.cat(edit_parts)
        reads = reads_of(trained.evaluator, name, originals, recon)
        results += score(trained.evaluator, name, originals, recon, edited, scales, reads)
        if reads is not None:
            reconstructions.append(reconstruction_keeps(name, reads))
        shown = slice(0, show)
        x = to_unit_range(originals[shown], torch.device("cpu"))
        blocks.append(torch.cat([x[:, None], recon[shown, None], edited[shown]], dim=1).flatten(0, 1))
    record = EditRecord(checkpoint=str(trained.checkpoint), step=trained.step, model_kind=model.kind,
                        images=described, num_images=len(originals), vector_images=vectors.images,
                        scales=list(scales), results=results, reconstruction=reconstructions)
    return EditResult(torch.cat(blocks), 2 + len(scales), record)


def edit_table(report: EditRecord) -> str:
    """The JSON as the lines a user reads: one row per attribute, one column per scale."""
    lines = [f"{report.model_kind} at step {report.step}: edits of {report.num_images} images "
             f"({report.images}), vectors from {report.vector_images} training images",
             "share of the images whose attribute the edit changed, by the evaluator "
             "(+scale: lacked it and gained it; -scale: had it and lost it):",
             f"  {'attribute':<20}" + "".join(f"{s:>+14g}" for s in report.scales)]
    by_attribute: dict[str, list[EditRow]] = {}
    for row in report.results:
        by_attribute.setdefault(row.attribute, []).append(row)
    for name, rows in by_attribute.items():
        cells = [("n/a" if r.fraction is None else f"{r.fraction:.0%} ({r.changed}/{r.candidates})") for r in rows]
        lines.append(f"  {name:<20}" + "".join(f"{c:>14}" for c in cells))
        base = ["" if r.baseline is None else f"{r.baseline:.0%}" for r in rows]
        lines.append(f"  {'  reconstruction':<20}" + "".join(f"{c:>14}" for c in base))
        own = ["" if r.vector_fraction is None else f"{r.vector_fraction:.0%}" for r in rows]
        lines.append(f"  {'  vector alone':<20}" + "".join(f"{c:>14}" for c in own))
    lines.append("  (reconstruction: the share the plain reconstruction already changes, without the vector;\n"
                 "   vector alone: the share changed among the images whose reconstruction did not change)")
    if report.reconstruction:
        lines.append("the plain reconstruction against the original, by the evaluator (both ways):")
    for r in report.reconstruction:
        share = "n/a" if r.changed_fraction is None else f"{r.changed_fraction:.0%}"
        lines.append(f"  {r.attribute:<20}lost on {_share(r.lost, r.having)} that have it, gained on "
                     f"{_share(r.gained, r.lacking)} that lack it: {share} of all {r.having + r.lacking} changed")
    return "\n".join(lines)


def _share(part: int, whole: int) -> str:
    return f"{part / whole:.0%} ({part}/{whole})" if whole else "n/a (0/0)"


def grid_path_check(out: str | Path) -> Path:
    return check_output_file(out, "--out", (".png",), "a grid is a PNG file")
