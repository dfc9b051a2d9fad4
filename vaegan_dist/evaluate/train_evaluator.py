"""Training an evaluator: multi-label attribute classification on a data set's own labels.

Trained on ``train``, early-stopped on ``valid`` (the best validation loss is kept), scored per attribute on
``test``. Seeded, so the built-in faces always get the same evaluator. The built-in data set's evaluator
is trained the first time anything needs it and cached (:func:`ensure_evaluator`), like the data itself.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from vaegan_dist.data.manifest import DataError
from vaegan_dist.data.sources import ShardSource, open_sources
from vaegan_dist.data.stream import first_images, training_stream
from vaegan_dist.evaluate.classifier import AttributeClassifier
from vaegan_dist.evaluate.evaluator import Evaluator, cached_evaluator_path, load_evaluator

MAX_HELD_OUT = 10_000  # valid/test images held in memory for early stopping and the accuracy table


def _jitter(x: torch.Tensor, generator: torch.Generator, pixels: int) -> torch.Tensor:
    """Shift each image by up to ``pixels`` in each direction (edges replicated): the attributes do not
    move with the face, so this is free data, and it keeps the classifier from memorising positions."""
    if pixels == 0:
        return x
    size = x.shape[-1]
    padded = F.pad(x, (pixels,) * 4, mode="replicate")
    dx, dy = torch.randint(0, 2 * pixels + 1, (2, x.shape[0]), generator=generator).tolist()
    return torch.stack([padded[i, :, dy[i]: dy[i] + size, dx[i]: dx[i] + size] for i in range(x.shape[0])])


@torch.no_grad()
def _accuracy_and_loss(network: AttributeClassifier, images: torch.Tensor, attrs: torch.Tensor,
                       device: torch.device) -> tuple[torch.Tensor, float]:
    evaluator = Evaluator(network, [], network.image_size, "", "", {})
    _, logits = evaluator.features_and_logits(images)
    target = attrs.to(device).float()
    network.train()
    return (((logits > 0) == target.bool()).float().mean(0).cpu(),
            F.binary_cross_entropy_with_logits(logits, target).item())


def train_evaluator(source: str | Path | ShardSource, *, seed: int = 0, batch_size: int = 64, max_epochs: int = 25,
                    patience: int = 4, lr: float = 2e-3, device: str | torch.device = "cpu",
                    log=print) -> Evaluator:
    """An evaluator for ``source`` (a data directory, manifest or URL with train, valid and test splits)."""
    splits = open_sources(source, "train", optional=("valid", "test")) if not isinstance(source, ShardSource) else None
    if splits is None or not {"valid", "test"} <= set(splits):
        where = source.where if isinstance(source, ShardSource) else source
        raise DataError(f"{where}: an evaluator needs train, valid and test splits with attributes (a data set "
                        "written by `vaegan-dist prepare`)")
    train = splits["train"]
    if not train.attributes:
        raise DataError(f"{train.where}: the data has no attributes to learn")
    device = torch.device(device)
    torch.manual_seed(seed)
    # channels_last: ~1.5x faster convolutions on CPU (and the layout GPUs' tensor cores want)
    network = AttributeClassifier(train.image_size, len(train.attributes)).to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr, weight_decay=1e-4)
    valid_x, valid_a = first_images(splits["valid"], "valid", MAX_HELD_OUT)
    test_x, test_a = first_images(splits["test"], "test", MAX_HELD_OUT)
    stream = training_stream(train, "train", train.image_size, batch_size, seed=seed, shuffle_buffer=2000,
                             loader_workers=0, hflip=True)
    steps_per_epoch = max(10, math.ceil((train.samples or 10 * batch_size) / batch_size))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, max_epochs * steps_per_epoch)

    shifts = torch.Generator().manual_seed(seed)
    best, best_loss, stale, started = None, math.inf, 0, time.time()
    for epoch in range(1, max_epochs + 1):
        network.train()
        for _ in range(steps_per_epoch):
            images, attrs = next(stream)
            x = _jitter(images.to(device).float().div_(127.5).sub_(1.0), shifts, max(1, train.image_size // 16))
            x = x.contiguous(memory_format=torch.channels_last)
            loss = F.binary_cross_entropy_with_logits(network(x), attrs.to(device).float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        accuracy, valid_loss = _accuracy_and_loss(network, valid_x, valid_a, device)
        log(f"evaluator epoch {epoch:2d}: valid loss {valid_loss:.4f}, mean valid accuracy "
            f"{accuracy.mean().item():.4f} ({time.time() - started:.0f}s)")
        if valid_loss < best_loss - 1e-4:
            best, best_loss, stale = copy.deepcopy(network.state_dict()), valid_loss, 0
        else:
            stale += 1
            if stale >= patience:
                break
    network.load_state_dict(best)
    accuracy, _ = _accuracy_and_loss(network, test_x, test_a, device)
    return Evaluator(network.eval(), list(train.attributes), train.image_size, train.fingerprint, train.where,
                     {name: float(a) for name, a in zip(train.attributes, accuracy)})


def accuracy_table(evaluator: Evaluator) -> str:
    rows = [f"  {name:<22} {acc:7.2%}" for name, acc in evaluator.test_accuracy.items()]
    return "\n".join(["test accuracy per attribute:", *rows, f"  {'mean':<22} {evaluator.mean_accuracy:7.2%}"])


def resolve_evaluator(source: ShardSource, cache_dir: str | Path, path: str = "", *, built_in: bool = False,
                      device: str | torch.device = "cpu", log=print) -> Evaluator | None:
    """The evaluator for ``source``'s data: the file ``path`` if given, else the cached one; for the built-in
    faces (``built_in``) one is trained (seeded) and cached the first time. None when there is none.
    Either way it is checked to be for this data."""
    if path:
        evaluator = load_evaluator(path, device)
        evaluator.check_data(source)
        return evaluator
    cached = cached_evaluator_path(cache_dir, source.fingerprint)
    if cached.is_file():
        evaluator = load_evaluator(cached, device)
        evaluator.check_data(source)
        return evaluator
    if not built_in:
        return None
    log(f"training the evaluator for the built-in faces once (cached as {cached}) ...")
    evaluator = train_evaluator(_data_dir(source), device=device, log=log)
    log(f"evaluator: mean test accuracy {evaluator.mean_accuracy:.2%}")
    evaluator.save(cached)
    return evaluator


def _data_dir(source: ShardSource) -> str:
    return source.where.rsplit("/", 1)[0] if source.where.endswith(".json") else source.where


def no_evaluator_hint(source: ShardSource) -> str:
    return (f"no evaluator for {_data_dir(source)}: "
            f"train one with `vaegan-dist evaluator train --data {_data_dir(source)}`")
