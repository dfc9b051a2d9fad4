"""The model as a Ray Serve deployment, apart from the HTTP ingress: one method per endpoint, each a few
encode and decode calls that ``@serve.batch`` gathers across concurrent requests into one network call.

The checkpoint arrives as the deployment's ``user_config``: ``reconfigure`` loads the new model beside the old
one and then swaps one reference, so requests in flight finish on the model they started with and none is
dropped. Serve calls it in place when a config file is deployed again with only the user_config changed
(``serve deploy``, a KubeRay ``RayService``); ``serve.run`` from Python replaces the replicas instead. A batch only
ever holds calls for one model: its items carry the model they were made for.
"""

from __future__ import annotations

import asyncio
import functools
import io
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import torch
from PIL import Image
from ray import serve
from torchvision.utils import make_grid

from vaegan_dist.data.codec import GRID_ROW
from vaegan_dist.data.user_images import load_user_image_bytes
from vaegan_dist.evaluate.attribute_vectors import PAPER_IMAGES, VECTOR_IMAGES_RANGE
from vaegan_dist.serve.face_model import FaceModel
from vaegan_dist.serve.requests import Refusal, RequestError, one_line

MAX_BATCH = 32  # requests per network call
BATCH_ALONE = 8  # a request with more images than this (a grid of samples, a morph) is a batch of its own:
# 32 of them would be one call on 2,048 images, its memory and its latency
BATCH_WAIT_S = 0.005  # how long a call waits for others to join its batch
DECODES_AT_ONCE = 2  # uploads decoded at a time per replica: each holds its whole image in memory while it decodes
logger = logging.getLogger("vaegan_dist.serve")


def png(images: torch.Tensor, nrow: int = GRID_ROW) -> bytes:
    """uint8 [N, 3, S, S] -> PNG bytes: one image as it is, several as the CLI's grids lay them out."""
    picture = images[0] if len(images) == 1 else make_grid(images, nrow=nrow)
    out = io.BytesIO()
    Image.fromarray(picture.permute(1, 2, 0).contiguous().numpy()).save(out, format="png")
    return out.getvalue()


MODEL_KEYS = ("checkpoint", "data", "vector_images")  # what a model is loaded from; "batching" is not


def checked_user_config(config: Any) -> tuple[dict[str, Any], bool]:
    """The user_config's model keys and its batching switch, or a ValueError naming the key at fault: the file
    comes from a person (``batching: "false"`` is a string, and ``bool("false")`` is True)."""
    if not isinstance(config, dict):
        raise ValueError(f"user_config: expected a mapping of {', '.join(MODEL_KEYS)}, batching")
    unknown = sorted(str(key) for key in set(config) - {*MODEL_KEYS, "batching"})
    if unknown:
        raise ValueError(f"user_config.{unknown[0][:60]}: not a key of the model deployment; it takes "
                         f"{', '.join(MODEL_KEYS)}, batching")
    checkpoint, data = config.get("checkpoint"), config.get("data")
    if not isinstance(checkpoint, str) or not checkpoint:
        raise ValueError("user_config.checkpoint: not set (a run directory, checkpoint directory or state.pt; in "
                         "a `serve build` file, under the model deployment)")
    if data is not None and not isinstance(data, str):
        raise ValueError(f"user_config.data: {str(data)[:60]!r} is not a path")
    images = config.get("vector_images", PAPER_IMAGES)
    low, high = VECTOR_IMAGES_RANGE
    if isinstance(images, bool) or not isinstance(images, int) or not low <= images <= high:
        raise ValueError(f"user_config.vector_images: {str(images)[:40]!r} is not a whole number from {low} to {high}")
    batching = config.get("batching", True)
    if not isinstance(batching, bool):
        raise ValueError(f"user_config.batching: {str(batching)[:40]!r} is not true or false")
    return {"checkpoint": checkpoint, "data": data or None, "vector_images": images}, batching


def refusing(endpoint: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """An endpoint whose RequestError comes back as a :class:`Refusal` (logged as one line at info level)."""

    @functools.wraps(endpoint)
    async def answer(*args: Any) -> Any:
        try:
            return await endpoint(*args)
        except RequestError as err:
            logger.info("refused %s: %s", endpoint.__name__, one_line(str(err))[:300])
            return Refusal(str(err))

    return answer


@serve.deployment(name="model", ray_actor_options={"num_cpus": 1}, max_ongoing_requests=256)
class ModelServer:
    def __init__(self) -> None:
        self.batching = True
        self.face: FaceModel | None = None
        self.loaded: dict[str, Any] = {}
        self.failed = ""  # the last swap that did not load
        self.decodes = asyncio.Semaphore(DECODES_AT_ONCE)

    def reconfigure(self, config: dict[str, Any]) -> None:
        """``{"checkpoint": ..., "data": ..., "vector_images": ..., "batching": ...}``: check, load, then swap.

        On a replica that already serves a model (Serve's lightweight update: a config file deployed again with
        only the user_config changed), a config that is wrong or a checkpoint that fails to load leaves the old
        model and its settings serving, and /info says what failed: a replica that raised here would be
        replaced by one that fails the same way, and the service would have no model at all. A new replica
        (the first, a scale-up, a replacement) has no old model to keep, and fails to start with the reason."""
        try:
            wanted, batching = checked_user_config(config)
            face = self.face
            if self.face is None or wanted != self.loaded:
                face = FaceModel.load(wanted["checkpoint"], data=wanted["data"], vector_images=wanted["vector_images"],
                                      device="cuda" if torch.cuda.is_available() else "cpu")
        except Exception as err:  # noqa: BLE001 - any failure: keep serving the old model, if any
            if self.face is None:
                raise
            reason = str(err).splitlines()[0][:300] if str(err) else type(err).__name__
            named = str(config.get("checkpoint") if isinstance(config, dict) else "user_config")
            self.failed = reason if reason.startswith(("user_config", named)) else f"{named}: {reason}"
            logger.error("kept %s: the new user_config did not load (%s)", self.face.checkpoint, self.failed)
            return
        self.face, self.loaded, self.batching, self.failed = face, wanted, batching, ""

    def check_health(self) -> None:
        if self.face is None:
            raise RuntimeError("no model loaded")

    # ------------------------------------------------------------------ endpoints

    def info(self) -> dict[str, Any]:
        return {**self._face().info(), "last_swap_failed": self.failed or None}

    @refusing
    async def sample(self, n: int, seed: int, settings: Mapping[str, int]) -> bytes:
        face = self._face()
        y = face.condition(n, settings, seed) if face.model.conditioned else None
        if settings and y is None:
            raise RequestError("attr: this model is not conditioned on attributes; edit a photo with POST /edit")
        return png(await self._decode(face, face.sample_codes(n, seed), y))

    @refusing
    async def reconstruct(self, image: bytes) -> bytes:
        face = self._face()
        return png(await self._decode(face, await self._encode(face, await self._photo(face, image, "image"))))

    @refusing
    async def edit(self, image: bytes, scales: Mapping[str, float]) -> bytes:
        face = self._face()
        codes = await self._encode(face, await self._photo(face, image, "image"))
        return png(await self._decode(face, face.edited(codes, scales)))

    @refusing
    async def interpolate(self, first: bytes, second: bytes, steps: int) -> bytes:
        face = self._face()
        a = await self._encode(face, await self._photo(face, first, "image_a"))
        b = await self._encode(face, await self._photo(face, second, "image_b"))
        return png(await self._decode(face, face.path(a[0], b[0], steps)), nrow=steps)

    # ------------------------------------------------------------------ the network calls, batched or not

    def _face(self) -> FaceModel:
        if self.face is None:
            raise RuntimeError("no model loaded: the deployment has no user_config with a checkpoint")
        return self.face

    async def _photo(self, face: FaceModel, data: bytes, field: str) -> torch.Tensor:
        """The upload decoded in a thread: a 16 MP JPEG takes 0.11 s to decode and crop (measured here), and on
        the event loop it would hold up every other request's batch. At most DECODES_AT_ONCE at a time: the rest
        wait their turn rather than each holding a decoded image in memory."""
        if not face.model.can_reconstruct or face.model.conditioned:
            raise RequestError(f"{field}: this {face.model.kind} model cannot encode a photo (it needs an "
                               "unconditioned model with an encoder)")
        from vaegan_dist.data.manifest import DataError

        try:
            async with self.decodes:
                return (await asyncio.to_thread(load_user_image_bytes, data, face.image_size, field))[None]
        except DataError as err:
            raise RequestError(str(err)) from None

    async def _encode(self, face: FaceModel, images: torch.Tensor) -> torch.Tensor:
        if not self.batching or len(images) > BATCH_ALONE:
            return face.encode(images)
        return await self._encode_batch((face, images))

    async def _decode(self, face: FaceModel, codes: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if not self.batching or len(codes) > BATCH_ALONE:
            return face.decode(codes, y)
        return await self._decode_batch((face, codes, y))

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=BATCH_WAIT_S)
    async def _encode_batch(self, items: list[tuple[FaceModel, torch.Tensor]]) -> list[torch.Tensor]:
        return _per_model(items, lambda face, parts: face.encode(torch.cat(parts)))

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=BATCH_WAIT_S)
    async def _decode_batch(self, items: list[tuple[FaceModel, torch.Tensor, torch.Tensor | None]]
                            ) -> list[torch.Tensor]:
        return _per_model([(face, (codes, y)) for face, codes, y in items], _decode_parts)


def _decode_parts(face: FaceModel, parts: list[tuple[torch.Tensor, torch.Tensor | None]]) -> torch.Tensor:
    codes = torch.cat([c for c, _ in parts])
    y = None if parts[0][1] is None else torch.cat([y for _, y in parts])  # one model: all conditioned or none
    return face.decode(codes, y)


def _per_model(items: list[tuple[FaceModel, Any]], run) -> list[torch.Tensor]:
    """Run ``run(face, parts)`` once per model in the batch (one, except across a swap) and split its output
    back into one tensor per item, in order. Items are [k, ...] tensors (or pairs whose first is one)."""
    out: list[torch.Tensor | None] = [None] * len(items)
    faces = {id(face): face for face, _ in items}
    for key, face in faces.items():
        mine = [i for i, (f, _) in enumerate(items) if id(f) == key]
        parts = [items[i][1] for i in mine]
        sizes = [len(p[0] if isinstance(p, tuple) else p) for p in parts]
        for i, chunk in zip(mine, run(face, parts).split(sizes)):
            out[i] = chunk
    return out  # type: ignore[return-value]
