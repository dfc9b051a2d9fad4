"""A trained model made ready to answer requests: loaded once, its attribute vectors computed (or read from
the cache beside the checkpoint) once, and every operation of the service expressed as encode and decode
of whole batches, so that the deployment can batch requests from many clients into one network call.

Images cross this boundary as uint8 [N, 3, S, S], converted to and from the networks' [-1, 1] exactly as
``vaegan-dist edit`` and the grids convert them, so that the service's images equal the CLI's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vaegan_dist.data.codec import to_unit_range
from vaegan_dist.errors import ConfigError
from vaegan_dist.evaluate.attribute_vectors import PAPER_IMAGES, AttributeVectors, vectors_for
from vaegan_dist.evaluate.editing import MAX_SCALE
from vaegan_dist.model import VAEGAN, load_model
from vaegan_dist.model.store import resolve_checkpoint, saved_evaluation
from vaegan_dist.serve.requests import RequestError


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> uint8 with the grids' own arithmetic (torchvision's make_grid(normalize, value_range=(-1, 1))
    then save_image), so that one image of the service equals the same image in a CLI grid."""
    unit = images.detach().float().cpu().clamp(-1, 1).sub(-1).div(2)
    return unit.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)


@dataclass
class FaceModel:
    model: VAEGAN
    checkpoint: Path  # the state.pt
    step: int
    image_size: int
    metrics: dict[str, float] = field(default_factory=dict)  # the checkpoint's last evaluation
    vectors: AttributeVectors | None = None  # None: the model has no encoder, is conditioned, or no data

    @classmethod
    def load(cls, checkpoint: str | Path, data: str | None = None, vector_images: int = PAPER_IMAGES,
             device: str = "cpu", log=print) -> FaceModel:
        """The checkpoint (a run directory, checkpoint directory or state.pt), with the attribute vectors of an
        unconditioned model with an encoder from ``vector_images`` images of ``data`` (default: the run's)."""
        model, cfg, step = load_model(checkpoint, device)
        state_file = resolve_checkpoint(checkpoint)
        metrics = {k: v for k, v in saved_evaluation(state_file)[1].items() if math.isfinite(v)}
        vectors = None
        if model.can_reconstruct and not model.conditioned:
            from vaegan_dist.data.sources import open_source
            from vaegan_dist.evaluate.run import data_to_use

            source = open_source(data_to_use(cfg, data, " (the attribute vectors come from it)"), "train")
            vectors = vectors_for(model, state_file, source, "train", vector_images, log=log)
        return cls(model, state_file, step, cfg.data.image_size, metrics, vectors)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def attributes(self) -> list[str]:
        """What /edit can change (the vectors' attributes) or, for a conditioned model, what /sample can set."""
        if self.model.conditioned:
            return list(self.model.attributes)
        return list(self.vectors.names) if self.vectors is not None else []

    def info(self) -> dict[str, Any]:
        return {"model_kind": self.model.kind, "conditioned": self.model.conditioned,
                "can_reconstruct": self.model.can_reconstruct, "can_edit": self.vectors is not None,
                "attributes": self.attributes, "image_size": self.image_size, "latent_dim": self.model.latent_dim,
                "step": self.step, "checkpoint": "/".join(self.checkpoint.parts[-3:]),  # run/checkpoint_N/state.pt:
                "metrics": self.metrics}  # not the server's directories

    # ---------------------------------------------------------------- what the deployment batches

    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 3, S, S] -> posterior means [N, latent] (float32, CPU)."""
        if not self.model.can_reconstruct or self.model.conditioned:
            raise RequestError(f"a {'conditioned ' if self.model.conditioned else ''}{self.model.kind} model "
                               "cannot encode a photo (it needs an unconditioned model with an encoder)")
        return self.model.encode(to_unit_range(images, self.device)).float().cpu()

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """[N, latent] (and, for a conditioned model, 0/1 attributes [N, A]) -> uint8 [N, 3, S, S]."""
        z = codes.to(self.device, torch.float32)
        return to_uint8(self.model.decode(z, None if y is None else y.to(self.device)))

    # ---------------------------------------------------------------- codes for each endpoint

    def sample_codes(self, n: int, seed: int) -> torch.Tensor:
        """The codes `vaegan-dist sample --seed` draws: the same generator, on the CPU."""
        return torch.randn(n, self.model.latent_dim, generator=torch.Generator().manual_seed(seed))

    def condition(self, n: int, settings: Mapping[str, int], seed: int) -> torch.Tensor:
        """y for a conditioned model's samples: each attribute at random with probability 1/2 (no data set is
        needed at serving time), those in ``settings`` forced to their value."""
        unknown = [name for name in settings if name not in self.model.attributes]
        if unknown:
            raise RequestError(f"attr {unknown[0]!r}: the model has no such attribute; it has: "
                               f"{', '.join(self.model.attributes)}")
        y = torch.randint(0, 2, (n, len(self.model.attributes)), generator=torch.Generator().manual_seed(seed + 1))
        for name, value in settings.items():
            y[:, self.model.attributes.index(name)] = value
        return y

    def edited(self, codes: torch.Tensor, scales: Mapping[str, float]) -> torch.Tensor:
        """codes + sum of scale x the attribute's vector (``vaegan-dist edit``'s latent arithmetic)."""
        if self.vectors is None:
            raise RequestError(f"a {self.model.kind} model has no attribute vectors (it needs an unconditioned "
                               "model with an encoder)")
        shift = torch.zeros(self.model.latent_dim)
        for name, scale in scales.items():
            if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not abs(scale) <= MAX_SCALE:
                raise RequestError(f"scales.{name[:60]}: {str(scale)[:40]!r} is not a number within +-{MAX_SCALE:g}")
            if name not in self.vectors.names:
                raise RequestError(f"scales.{name[:60]}: the model has no such attribute; it has: "
                                   f"{', '.join(self.vectors.names)}")
            try:
                shift += float(scale) * self.vectors.vector(name).float().cpu()
            except ConfigError as err:  # an attribute every encoded image has (or none): no vector
                raise RequestError(f"scales.{name[:60]}: {str(err).split(': ', 1)[-1]}") from None
        return codes + shift

    @staticmethod
    def path(a: torch.Tensor, b: torch.Tensor, steps: int) -> torch.Tensor:
        """``steps`` codes evenly from a to b, both ends included (linear, as the paper's interpolations)."""
        t = torch.linspace(0, 1, steps)[:, None]
        return a[None] * (1 - t) + b[None] * t
