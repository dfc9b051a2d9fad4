"""Visual attribute vectors (the paper's section 4.1.1): latent arithmetic that adds "eyeglasses" to a face.

The vector of an attribute is the mean latent code (posterior mean) of training images that have it minus
the mean of those that do not, over up to 10,000 encoded images as in the paper. Adding ``scale * vector``
to an image's code and decoding adds the attribute; a negative scale removes it.

Encoding 10,000 images takes a minute on a CPU, so the vectors are cached beside the checkpoint
(``attribute_vectors.pt``, tensors only), keyed by the checkpoint file's SHA-256, the data set's
fingerprint, the split and the count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from vaegan_dist.atomic import atomic_file
from vaegan_dist.data.codec import to_unit_range
from vaegan_dist.data.shards import sha256_of
from vaegan_dist.data.sources import ShardSource
from vaegan_dist.data.stream import batches_in_order
from vaegan_dist.errors import CheckpointError, ConfigError
from vaegan_dist.model import VAEGAN
from vaegan_dist.model.store import load_tensors

PAPER_IMAGES = 10_000  # the paper encodes 10,000 training images
VECTOR_IMAGES_RANGE = (2, 1_000_000)  # a vector needs an image with and one without; the CLI's --vector-images too
CACHE_FILE = "attribute_vectors.pt"
FORMAT = "vaegan-dist-attribute-vectors/1"


@dataclass
class AttributeVectors:
    names: tuple[str, ...]
    vectors: torch.Tensor  # [A, latent]: mean code with the attribute - mean code without
    with_count: torch.Tensor  # [A] images that have each attribute
    without_count: torch.Tensor  # [A] images that do not
    images: int  # images encoded

    def vector(self, name: str) -> torch.Tensor:
        """The vector of one attribute; an attribute that every (or no) encoded image has has none."""
        if name not in self.names:
            raise ConfigError(f"--attribute {name!r}: the data has no such attribute; it has: "
                              f"{', '.join(self.names)}")
        i = self.names.index(name)
        if self.with_count[i] == 0 or self.without_count[i] == 0:
            side = "has" if self.without_count[i] == 0 else "lacks"
            raise ConfigError(f"--attribute {name!r}: every one of the {self.images} encoded images {side} it, "
                              "so it has no vector (a difference of two means)")
        return self.vectors[i]

    def state(self, key: dict[str, object]) -> dict[str, object]:
        return {"format": FORMAT, "key": key, "names": list(self.names), "vectors": self.vectors,
                "with_count": self.with_count, "without_count": self.without_count, "images": self.images}


def compute_vectors(codes: torch.Tensor, attributes: torch.Tensor, names: Sequence[str]) -> AttributeVectors:
    """codes [N, latent], attributes 0/1 [N, A] -> one vector per attribute (zero where one side is empty)."""
    has = attributes.to(torch.float64)
    codes = codes.to(torch.float64)
    with_count, without_count = has.sum(0), (1 - has).sum(0)
    mean_with = (has.T @ codes) / with_count.clamp(min=1)[:, None]
    mean_without = ((1 - has).T @ codes) / without_count.clamp(min=1)[:, None]
    empty = (with_count == 0) | (without_count == 0)
    vectors = torch.where(empty[:, None], torch.zeros_like(mean_with), mean_with - mean_without)
    return AttributeVectors(tuple(names), vectors.float(), with_count.long(), without_count.long(), len(codes))


@torch.no_grad()
def encode_split(model: VAEGAN, source: ShardSource, split: str, n: int, batch: int = 256
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means and attributes of the first ``n`` images of a split, in batches (at 128 px, 10,000
    images are half a gigabyte: they are never all in memory)."""
    device = next(model.parameters()).device
    codes, attrs = [], []
    for images, labels in batches_in_order(source, split, n, batch):
        codes.append(model.encode(to_unit_range(images, device)).float().cpu())
        attrs.append(labels)
    if not codes:
        raise ConfigError(f"{source.where}: split {split!r} has no readable images to compute attribute vectors from")
    return torch.cat(codes), torch.cat(attrs)


def vectors_for(model: VAEGAN, checkpoint: Path, source: ShardSource, split: str, n: int = PAPER_IMAGES,
                log=print) -> AttributeVectors:
    """The model's attribute vectors from ``n`` images of ``split``: cached beside ``checkpoint`` (state.pt)."""
    if model.encoder is None:
        raise CheckpointError(f"{checkpoint}: a {model.kind!r} model has no encoder, so it has no latent codes "
                              "to edit; attribute vectors need vae, vae_disl or vaegan")
    if not source.attributes:
        raise ConfigError(f"{source.where}: the data has no attributes, so it defines no attribute vectors")
    # The cache belongs to these weights, not to a path another file may take later.
    key = {"checkpoint": sha256_of(checkpoint), "data": source.fingerprint, "split": split, "images": n}
    cache = checkpoint.parent / CACHE_FILE
    cached, ours = _read_cache(cache, key)
    if cached is not None and _fits(cached, source.attributes, model.latent_dim):
        return cached
    log(f"encoding up to {n} {split} images for the attribute vectors"
        + (f" (cached as {cache})" if ours else "") + " ...")
    codes, attrs = encode_split(model, source, split, n)
    vectors = compute_vectors(codes, attrs, source.attributes)
    if not ours:
        log(f"warning: {cache} exists and is not an attribute-vector cache of ours; left as it is, nothing cached")
        return vectors
    for stale in cache.parent.glob(f".{CACHE_FILE}.*.tmp"):  # what a killed earlier edit left half-written
        if stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)
    try:
        with atomic_file(cache) as f:
            torch.save(vectors.state(key), f)
    except OSError as err:
        log(f"warning: could not cache the attribute vectors at {cache} ({err.strerror or err})")
    return vectors


def _fits(vectors: AttributeVectors, names: Sequence[str], latent_dim: int) -> bool:
    """A cache of ours can still be damaged or hand-edited: use it only if every tensor has the right shape."""
    a = len(names)
    return (vectors.names == tuple(names) and isinstance(vectors.vectors, torch.Tensor)
            and vectors.vectors.shape == (a, latent_dim) and vectors.vectors.is_floating_point()
            and all(isinstance(t, torch.Tensor) and t.shape == (a,) and not t.is_floating_point()
                    for t in (vectors.with_count, vectors.without_count)))


def _read_cache(cache: Path, key: dict[str, object]) -> tuple[AttributeVectors | None, bool]:
    """(the cached vectors if the cache is for this data, split and count, whether the path may be written):
    a cache of ours for other settings is replaced; a file of someone else's is never overwritten."""
    if not cache.exists():
        return None, True
    try:
        state = load_tensors(cache, what="attribute-vector cache")
    except CheckpointError:
        return None, False
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        return None, False
    if state.get("key") != key:
        return None, True
    try:
        return AttributeVectors(tuple(state["names"]), state["vectors"], state["with_count"],
                                state["without_count"], int(state["images"])), True
    except (KeyError, TypeError, ValueError):
        return None, True


@torch.no_grad()
def edit(model: VAEGAN, x: torch.Tensor, vector: torch.Tensor, scales: Sequence[float]
         ) -> tuple[torch.Tensor, torch.Tensor]:
    """Images in [-1, 1] [N, 3, S, S] -> (reconstructions [N, 3, S, S], edits [N, len(scales), 3, S, S]):
    decode(z + scale * vector) with z the posterior mean."""
    z = model.encode(x)
    v = vector.to(z.device, z.dtype)
    recon = model.decode(z)
    edits = torch.stack([model.decode(z + s * v) for s in scales], dim=1)
    return recon, edits
