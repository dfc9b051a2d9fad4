"""A trained evaluator on disk: its network, the data it was trained for, and its test accuracy.

An evaluator is only meaningful on the data it learned: its features define "real" for the metrics. So it
records the data's fingerprint (a hash of the manifest's shard checksums, :meth:`Manifest.fingerprint`)
and refuses any other data. The file holds tensors and plain values only and is read with
``torch.load(weights_only=True)``; a JSON report with the per-attribute accuracy sits beside it.

Where evaluators live: ``<data.cache_dir>/evaluators/<fingerprint[:16]>.pt`` unless a path is given, so
that ``evaluate`` and training find the one for their data without being told.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vaegan_dist.atomic import atomic_write_bytes, atomic_write_text
from vaegan_dist.data.codec import to_unit_range
from vaegan_dist.data.manifest import DataError
from vaegan_dist.data.sources import ShardSource
from vaegan_dist.errors import CheckpointError
from vaegan_dist.evaluate.classifier import AttributeClassifier
from vaegan_dist.model.store import load_tensors

FORMAT = "vaegan-dist-evaluator/1"
CACHE_SUBDIR = "evaluators"


def cached_evaluator_path(cache_dir: str | Path, fingerprint: str) -> Path:
    return Path(cache_dir).expanduser().resolve() / CACHE_SUBDIR / f"{fingerprint[:16]}.pt"


@dataclass
class Evaluator:
    network: AttributeClassifier
    attributes: list[str]
    image_size: int
    fingerprint: str  # the data it was trained on (ShardSource.fingerprint)
    data_where: str  # where that data was, for messages
    test_accuracy: dict[str, float]  # per attribute, on the data's test split
    where: str = "<memory>"  # the file it came from, for messages

    @property
    def mean_accuracy(self) -> float:
        return sum(self.test_accuracy.values()) / max(1, len(self.test_accuracy))

    def check_data(self, source: ShardSource) -> None:
        """Refuse data this evaluator was not trained for: its features would not mean 'real'."""
        if source.fingerprint != self.fingerprint:
            raise DataError(f"{self.where}: this evaluator was trained for {self.data_where}, not {source.where} "
                            f"(data fingerprint {self.fingerprint[:12]} != {source.fingerprint[:12]}); train one "
                            f"with `vaegan-dist evaluator train --data {source.where}`")

    def to(self, device: torch.device | str) -> Evaluator:
        self.network.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.network.parameters()).device

    @torch.no_grad()
    def features_and_logits(self, x: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate features [N, F] and logits [N, A] (fp32, on the evaluator's device) for images in
        [-1, 1] or uint8 images, in batches."""
        self.network.eval()
        feats, logits = [], []
        for chunk in x.split(batch):
            chunk = to_unit_range(chunk, self.device) if chunk.dtype == torch.uint8 else chunk.to(self.device).float()
            f = self.network.features(chunk)
            feats.append(f)
            logits.append(self.network.head(f))
        return torch.cat(feats), torch.cat(logits)

    def state(self) -> dict[str, Any]:
        return {"format": FORMAT, "attributes": list(self.attributes), "image_size": self.image_size,
                "fingerprint": self.fingerprint, "data_where": self.data_where,
                "test_accuracy": dict(self.test_accuracy),
                "network": {k: v.detach().cpu() for k, v in self.network.state_dict().items()}}

    @classmethod
    def from_state(cls, state: Any, where: str) -> Evaluator:
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise CheckpointError(f"{where}: not a vaegan-dist evaluator (format {found!r}, expected {FORMAT!r})")
        try:
            attributes = [str(a) for a in state["attributes"]]
            network = AttributeClassifier(int(state["image_size"]), len(attributes))
            network.load_state_dict(state["network"])
            return cls(network.eval(), attributes, int(state["image_size"]), str(state["fingerprint"]),
                       str(state["data_where"]), {str(k): float(v) for k, v in state["test_accuracy"].items()}, where)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise CheckpointError(f"{where}: a damaged evaluator ({first[:200]})") from None

    def report(self) -> dict[str, Any]:
        """What is written beside the weights as JSON: enough to judge the evaluator without loading it."""
        return {"format": FORMAT, "data": self.data_where, "fingerprint": self.fingerprint,
                "image_size": self.image_size, "attributes": self.attributes,
                "mean_test_accuracy": self.mean_accuracy, "test_accuracy": self.test_accuracy}

    def save(self, path: str | Path) -> Path:
        """``path`` (.pt) and ``path`` with .json, each written whole or not at all."""
        path = Path(path).expanduser()
        buffer = io.BytesIO()
        torch.save(self.state(), buffer)
        atomic_write_bytes(path, buffer.getvalue(), durable=True)
        atomic_write_text(path.with_suffix(".json"), json.dumps(self.report(), indent=1) + "\n")
        self.where = str(path)
        return path


def load_evaluator(path: str | Path, device: torch.device | str = "cpu") -> Evaluator:
    """Read an evaluator file; only tensors and plain values are ever unpickled."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory, not an evaluator file (.pt)")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such evaluator file")
    state = load_tensors(path, "cpu", "evaluator")
    return Evaluator.from_state(state, str(path)).to(device)
