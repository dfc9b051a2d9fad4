"""The discriminator as unsupervised pretraining (the paper's section 4.3): does what the GAN's discriminator
learned without labels help a supervised task when labels are scarce?

The task is attribute prediction (every attribute of the data, multi-label), with the discriminator's
network up to its FC layer as the trunk and a new linear head, trained three ways:

    scratch     the same network, freshly initialised, all of it trained
    frozen      the trained discriminator's trunk fixed (BatchNorm statistics too); only the head learns
    fine-tuned  initialised from the trained discriminator, all of it trained (the trunk at a lower rate)

each with 1%, 10% and 100% of the training labels (the same seeded subsets for every initialisation),
early-stopped on the validation split, scored on the test split with the true labels: mean accuracy over
attributes. The evaluator plays no part here. A majority-class row (each attribute's most common training
value) is the floor every classifier must beat.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vaegan_dist.data.codec import to_unit_range
from vaegan_dist.data.stream import first_images
from vaegan_dist.errors import CheckpointError, ConfigError
from vaegan_dist.evaluate.records import PretrainingRecord, PretrainingRow
from vaegan_dist.evaluate.run import Trained
from vaegan_dist.model import VAEGAN
from vaegan_dist.model.discriminator import Discriminator

INITS = ("scratch", "frozen", "fine-tuned")
LABEL_FRACTIONS = (0.01, 0.1, 1.0)


class AttributeNet(nn.Module):
    """The discriminator's trunk (stem, strided convs, FC) and a linear head with one logit per attribute."""

    def __init__(self, discriminator: Discriminator, attributes: int):
        super().__init__()
        self.stem = discriminator.stem
        self.blocks = discriminator.blocks
        self.fc = discriminator.fc
        self.head = nn.Linear(discriminator.fc[0].out_features, attributes)

    def trunk_parameters(self) -> list[nn.Parameter]:
        return [p for m in (self.stem, self.blocks, self.fc) for p in m.parameters()]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.stem(x)
        for block in self.blocks:
            h = block(h)
        return self.head(self.fc(h.flatten(1)))


@dataclass
class Settings:
    steps: int = 1000  # optimiser steps per classifier
    batch: int = 64
    lr: float = 1e-3  # Adam, head (and the whole network from scratch)
    finetune_lr: float = 1e-4  # Adam, the pretrained trunk when fine-tuned
    eval_every: int = 100  # steps between validation checks (the best one is kept)
    seed: int = 0


def mean_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over attributes of the share of images whose attribute is predicted right (logit > 0 = has it)."""
    return float(((logits > 0) == labels.bool()).double().mean())


@torch.no_grad()
def _logits(net: nn.Module, images: torch.Tensor, device: torch.device, batch: int = 512) -> torch.Tensor:
    was = net.training
    net.eval()
    try:
        return torch.cat([net(to_unit_range(c, device)).float().cpu() for c in images.split(batch)])
    finally:
        net.train(was)


def label_subsets(n: int, fractions: Sequence[float], seed: int) -> dict[float, torch.Tensor]:
    """Nested seeded subsets of the n training images: 1% is inside 10%, which is inside 100%."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return {f: order[: max(1, math.ceil(f * n))] for f in fractions}


def check_pretrainable(model: VAEGAN, checkpoint: Path) -> None:
    """Only a discriminator that learned without labels is unsupervised pretraining."""
    if model.discriminator is None:
        raise CheckpointError(f"{checkpoint}: a {model.kind!r} model has no discriminator to pretrain with; "
                              "use a vaegan, vae_disl or gan checkpoint")
    if model.conditioned:
        raise CheckpointError(f"{checkpoint}: this discriminator was trained with the attributes as input, "
                              "so it learned with labels; use a model trained with model.condition=none")


def check_fractions(fractions: Sequence[float]) -> None:
    bad = [f for f in fractions if not 0 < f <= 1]  # NaN fails too
    if bad:
        raise ConfigError(f"--fractions {bad[0]}: a label fraction is in (0, 1]")
    if len(set(fractions)) != len(fractions):
        raise ConfigError(f"--fractions {list(fractions)}: repeats a value")


def build_net(trained: Trained, init: str, attributes: int, seed: int) -> AttributeNet:
    discriminator = trained.model.discriminator
    if init == "scratch":
        torch.manual_seed(seed)
        fresh = Discriminator(trained.model.arch, discriminator.fc[0].out_features)
        return AttributeNet(fresh, attributes)
    net = AttributeNet(copy.deepcopy(discriminator), attributes)
    if init == "frozen":
        for p in net.trunk_parameters():
            p.requires_grad_(False)
    return net


def train_classifier(net: AttributeNet, init: str, train: tuple[torch.Tensor, torch.Tensor],
                     valid: tuple[torch.Tensor, torch.Tensor], settings: Settings, device: torch.device
                     ) -> tuple[AttributeNet, float]:
    """Train with hflips, keep the weights of the best validation accuracy; returns them and that accuracy."""
    net.to(device).train()
    head = list(net.head.parameters())
    groups = [{"params": head, "lr": settings.lr}]
    if init == "scratch":
        groups.append({"params": net.trunk_parameters(), "lr": settings.lr})
    elif init == "fine-tuned":
        groups.append({"params": net.trunk_parameters(), "lr": settings.finetune_lr})
    optimizer = torch.optim.Adam(groups)
    frozen = init == "frozen"
    generator = torch.Generator().manual_seed(settings.seed)
    images, labels = train
    best, best_state = -1.0, None
    for step in range(1, settings.steps + 1):
        net.train()
        if frozen:  # the trunk's BatchNorm statistics stay the discriminator's
            for m in (net.stem, net.blocks, net.fc):
                m.eval()
        index = torch.randint(len(images), (settings.batch,), generator=generator)
        x = to_unit_range(images[index], device)
        flip = torch.rand(len(x), generator=generator) < 0.5
        x = torch.where(flip.to(device)[:, None, None, None], x.flip(3), x)
        loss = F.binary_cross_entropy_with_logits(net(x), labels[index].float().to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % settings.eval_every == 0 or step == settings.steps:
            accuracy = mean_accuracy(_logits(net, valid[0], device), valid[1])
            if accuracy > best:
                best, best_state = accuracy, copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    return net, best


def pretraining_table(trained: Trained, *, fractions: Sequence[float] = LABEL_FRACTIONS, train_images: int = 20_000,
                      valid_images: int = 1000, test_images: int = 2000, settings: Settings | None = None,
                      log=print) -> PretrainingRecord:
    """Test accuracy of scratch / frozen / fine-tuned classifiers at each label fraction."""
    settings = settings or Settings()
    model = trained.model
    check_pretrainable(model, trained.checkpoint)
    check_fractions(fractions)
    device = next(model.parameters()).device
    train = first_images(trained.sources["train"], "train", train_images)
    valid = first_images(trained.sources["valid"], "valid", valid_images)
    test = first_images(trained.sources["test"], "test", test_images)
    names = trained.sources["train"].attributes
    if not names:
        raise ConfigError(f"{trained.sources['train'].where}: the data has no attributes to predict")
    majority = (train[1].double().mean(0) > 0.5).double()
    rows = [PretrainingRow(init="majority class", fraction=1.0, labels=len(train[0]),
                           accuracy=float((test[1].double() == majority).double().mean()),
                           valid_accuracy=float((valid[1].double() == majority).double().mean()))]
    subsets = label_subsets(len(train[0]), sorted(fractions), settings.seed)
    for fraction, index in subsets.items():
        for init in INITS:
            net = build_net(trained, init, len(names), settings.seed)
            net, valid_accuracy = train_classifier(net, init, (train[0][index], train[1][index]), valid, settings,
                                                   device)
            accuracy = mean_accuracy(_logits(net, test[0], device), test[1])
            log(f"  {init:<10} {fraction:>6.0%} of the labels ({len(index)} images): test accuracy {accuracy:.4f}")
            rows.append(PretrainingRow(init=init, fraction=fraction, labels=len(index), accuracy=accuracy,
                                       valid_accuracy=valid_accuracy))
    return PretrainingRecord(checkpoint=str(trained.checkpoint), step=trained.step, model_kind=model.kind,
                             metric="mean attribute accuracy", attributes=list(names), train_images=len(train[0]),
                             valid_images=len(valid[0]), test_images=len(test[0]),
                             label_fractions=sorted(fractions), steps=settings.steps, rows=rows)


def pretraining_text(table: PretrainingRecord) -> str:
    fractions = table.label_fractions
    lines = [f"attribute prediction on {table.test_images} test images ({table.metric}), "
             f"discriminator of a {table.model_kind} at step {table.step}:",
             f"  {'initialisation':<16}" + "".join(f"{f:>12.0%}" for f in fractions)]
    for init in ("majority class", *INITS):
        cells = {r.fraction: r.accuracy for r in table.rows if r.init == init}
        if init == "majority class":
            lines.append(f"  {init:<16}" + "".join(f"{cells[1.0]:>12.4f}" for _ in fractions))
            continue
        lines.append(f"  {init:<16}" + "".join(f"{cells[f]:>12.4f}" if f in cells else f"{'-':>12}"
                                                for f in fractions))
    labels = {r.fraction: r.labels for r in table.rows if r.init == INITS[0]}
    lines.append(f"  {'(labels)':<16}" + "".join(f"{labels.get(f, 0):>12d}" for f in fractions))
    return "\n".join(lines)
