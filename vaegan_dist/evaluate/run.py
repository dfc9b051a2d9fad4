"""``vaegan-dist evaluate``: every metric of a checkpoint on a split of its data, as a table and as JSON.

The data defaults to what the run trained on (its config says where); the evaluator to the cached one for
that data, trained first for the built-in faces.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vaegan_dist.atomic import atomic_write_text, check_output_file
from vaegan_dist.config import Config
from vaegan_dist.data.sources import ShardSource, open_sources
from vaegan_dist.data.stream import first_images
from vaegan_dist.data.synthetic import is_built_in
from vaegan_dist.errors import DataError
from vaegan_dist.evaluate.evaluator import Evaluator
from vaegan_dist.evaluate.model_metrics import METRICS, HeldOut, better_note, model_metrics
from vaegan_dist.evaluate.results import json_text
from vaegan_dist.evaluate.shares import ONE_PROCESS, Share
from vaegan_dist.evaluate.train_evaluator import no_evaluator_hint, resolve_evaluator
from vaegan_dist.model import VAEGAN, load_model
from vaegan_dist.model.store import resolve_checkpoint


@dataclass
class Trained:
    """A trained model with the data it is measured on and the evaluator that judges it: what every
    experiment on a checkpoint starts from."""

    model: VAEGAN
    cfg: Config
    step: int
    checkpoint: Path  # its state.pt
    sources: dict[str, ShardSource]  # the splits asked for, of the data (default: what it trained on)
    evaluator: Evaluator | None

    @property
    def name(self) -> str:
        """The run's name (the directory above checkpoint_<step>), for tables."""
        return self.checkpoint.parent.parent.name if self.checkpoint.parent.name.startswith("checkpoint_") \
            else self.checkpoint.parent.name


def data_to_use(cfg: Config, data: str | None, why: str = "") -> str:
    """``--data`` if given, else the data the run trained on, which must be here (a local path that exists, or
    a URL): a checkpoint's own ``data.source`` is never run as a ``pipe:`` command. ``why``: appended to the
    error (what the data is needed for)."""
    if data:
        return data
    source = cfg.data.source
    if not Path(source).exists() and "://" not in source:
        raise DataError(f"{source}: the data this model trained on is not here; pass --data{why}")
    return source


def open_trained(checkpoint: str | Path, *, data: str | None = None, splits: tuple[str, ...] = ("test",),
                 evaluator: str | None = "", device: str = "cpu", require_evaluator: bool = True,
                 check: Callable[[VAEGAN, Path], None] | None = None, log=print) -> Trained:
    """Load the checkpoint, open ``splits`` of ``data`` (default: the run's own data, which must be here) and
    resolve the evaluator for it (``evaluator=None``: none needed; none found and not required: a warning).
    ``check(model, state.pt)`` refuses a model the caller cannot use, before any data or evaluator is touched.
    One-line errors for each."""
    model, cfg, step = load_model(checkpoint, device)
    if check is not None:
        check(model, resolve_checkpoint(checkpoint))
    source = data_to_use(cfg, data)
    sources = open_sources(source, splits[0], optional=splits[1:])
    missing = [s for s in splits if s not in sources]
    if missing:
        raise DataError(f"{source}: has no {missing[0]!r} split")
    for split in splits:
        if sources[split].image_size != cfg.data.image_size:
            raise DataError(f"{sources[split].where}: holds {sources[split].image_size} px images, but the model in "
                            f"{resolve_checkpoint(checkpoint)} makes {cfg.data.image_size} px ones")
    found = None
    if evaluator is not None:
        found = resolve_evaluator(sources[splits[0]], cfg.data.cache_dir, evaluator, device=device, log=log,
                                  built_in=is_built_in(source, cfg.data.cache_dir))
        if found is None and require_evaluator:
            raise DataError(no_evaluator_hint(sources[splits[0]]))
        if found is None:
            log(f"warning: {no_evaluator_hint(sources[splits[0]])}; until then nothing is scored")
    return Trained(model, cfg, step, resolve_checkpoint(checkpoint), sources, found)


def evaluate_checkpoint(checkpoint: str | Path, *, data: str | None = None, split: str = "test", num: int = 2000,
                        evaluator: str = "", inception_weights: str | None = None, seed: int = 0,
                        device: str = "cpu", log=print, workers: int = 1, batch: int = 256) -> dict[str, Any]:
    """The metrics of the model in ``checkpoint`` on ``num`` images of ``split`` (fewer if the split is
    smaller), with ``num``, ``split``, ``step`` and ``model_kind``. ``workers`` > 1: as many processes on this
    machine share the batches (:mod:`vaegan_dist.evaluate.distributed`), with the same result. ``batch``: images
    per batch; the samples' z are drawn batch by batch, so the numbers depend on it (not on ``workers``)."""
    if workers > 1:
        from vaegan_dist.evaluate.distributed import evaluate_in_processes

        # Everything that can refuse or train the evaluator happens here, once, before any worker starts.
        found = open_trained(checkpoint, data=data, splits=(split,), evaluator=evaluator, device="cpu", log=log)
        cached = found.evaluator.where if found.evaluator and Path(found.evaluator.where).is_file() else evaluator
        return evaluate_in_processes(workers, checkpoint, data=data, split=split, num=num, evaluator=cached,
                                     inception_weights=inception_weights, seed=seed, device=device, batch=batch)
    return evaluate_share(checkpoint, data=data, split=split, num=num, evaluator=evaluator,
                          inception_weights=inception_weights, seed=seed, device=device, log=log, batch=batch)


def evaluate_share(checkpoint: str | Path, *, data: str | None, split: str, num: int, evaluator: str,
                   inception_weights: str | None, seed: int, device: str, log=print,
                   share: Share = ONE_PROCESS, batch: int = 256) -> dict[str, Any] | None:
    """This process's share of :func:`evaluate_checkpoint` (all of it by default); the result on rank 0 only."""
    trained = open_trained(checkpoint, data=data, splits=(split,), evaluator=evaluator, device=device, log=log)
    model, step, sources, found = trained.model, trained.step, trained.sources, trained.evaluator
    images, attrs = first_images(sources[split], split, num)
    held_out = HeldOut.of(images, found, where=f"{sources[split].where} split {split!r}", attributes=attrs,
                          attribute_names=sources[split].attributes, share=share, batch=batch)
    inception = None
    if inception_weights:
        from vaegan_dist.evaluate.inception import load_inception

        inception = load_inception(inception_weights, device)
    values = model_metrics(model, found, held_out, METRICS, seed=seed, inception=inception, share=share,
                           batch=batch)
    if values is None:
        return None
    return {**values, "num": len(held_out), "split": split, "step": step, "model_kind": model.kind,
            "data": sources[split].where}


def metrics_table(result: dict[str, Any]) -> str:
    lines = [f"{result['model_kind']} at step {result['step']}, {result['num']} {result['split']} images:"]
    for name in METRICS:
        value = result[name]
        shown = "n/a" if value is None else f"{value:.4f}"
        lines.append(f"  {name:<16} {shown:>10}   ({better_note(name)})")
    return "\n".join(lines)


def check_json_target(path: str | Path) -> Path:
    """Refuse a --json target before minutes of evaluation, not after."""
    return check_output_file(path, "--json")


def write_json(result: dict[str, Any], path: str | Path) -> Path:
    """Keys exactly METRICS + num, split, step, model_kind; metrics a kind cannot have are null."""
    path = check_json_target(path)
    keys = (*METRICS, "num", "split", "step", "model_kind")
    atomic_write_text(path, json_text({k: v for k, v in result.items() if k in keys}))
    return path


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
