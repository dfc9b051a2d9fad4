"""The Serve application: the HTTP ingress bound to the model deployment, configured from a checkpoint.

    vaegan-dist serve --checkpoint RUN                       # this module, started and watched by our CLI
    serve run vaegan_dist.serve.app:app checkpoint=RUN       # the same application with Ray's own tools
    vaegan-dist serve --checkpoint RUN --write-config serve.yaml && serve deploy serve.yaml   # a cluster
    serve build vaegan_dist.serve.app:template -o serve.yaml  # Ray's own file; set the model's checkpoint in it

A GPU per model replica when the cluster has GPUs, a CPU otherwise; ``replicas`` fixed, or ``autoscale``
"MIN-MAX" replicas by Serve's request-based autoscaling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ray.serve import Application

from vaegan_dist.errors import ConfigError
from vaegan_dist.evaluate.attribute_vectors import PAPER_IMAGES, VECTOR_IMAGES_RANGE
from vaegan_dist.serve.http import LOCAL_HOSTS, Ingress
from vaegan_dist.serve.model_server import ModelServer

MAX_REPLICAS = 64


@dataclass(frozen=True)
class ServeSettings:
    checkpoint: str
    data: str | None = None  # where the attribute vectors come from (default: the run's data)
    vector_images: int = PAPER_IMAGES
    replicas: int = 1
    autoscale: tuple[int, int] | None = None  # (min, max) replicas
    batching: bool = True
    gpu: bool = False  # one GPU per model replica
    # the names a request's Host header may give: no other site's page can reach the API by DNS rebinding
    allowed_hosts: tuple[str, ...] = LOCAL_HOSTS

    def ingress_config(self) -> dict[str, Any]:
        """The HTTP deployment's user_config: the Host names it answers to."""
        return {"allowed_hosts": list(self.allowed_hosts)}

    def model_config(self) -> dict[str, Any]:
        """The model deployment's user_config: what ``reconfigure`` loads (change it to swap the checkpoint)."""
        return {"checkpoint": self.checkpoint, "data": self.data, "vector_images": self.vector_images,
                "batching": self.batching}


def _digits(text: str) -> bool:
    """Whether ``int()`` reads ``text`` as a whole number >= 0 (``"²".isdigit()`` is True, but not for int)."""
    text = text.strip()
    return text.isascii() and text.isdigit()


def parse_autoscale(text: str) -> tuple[int, int]:
    low, sep, high = text.partition("-")
    if not sep or not _digits(low) or not _digits(high):
        raise ConfigError(f"--autoscale {text!r}: expected MIN-MAX replicas, e.g. 1-4")
    bounds = int(low), int(high)
    if not 0 <= bounds[0] <= bounds[1] or not 1 <= bounds[1] <= MAX_REPLICAS:
        raise ConfigError(f"--autoscale {text!r}: needs 0 <= MIN <= MAX and 1 <= MAX <= {MAX_REPLICAS}")
    return bounds


def scaling_options(settings: ServeSettings) -> dict[str, Any]:
    """The model deployment's replica count: fixed, or Serve's request-based autoscaling between two bounds."""
    if settings.autoscale is None:
        return {"num_replicas": settings.replicas}
    low, high = settings.autoscale
    return {"num_replicas": "auto", "autoscaling_config": {"min_replicas": low, "max_replicas": high,
                                                           "initial_replicas": max(low, 1)}}


def actor_options(settings: ServeSettings) -> dict[str, int]:
    """A model replica's resources: a GPU where the cluster has them, a CPU otherwise."""
    return {"num_cpus": 0 if settings.gpu else 1, "num_gpus": 1 if settings.gpu else 0}


def build(settings: ServeSettings) -> Application:
    model = ModelServer.options(user_config=settings.model_config(), ray_actor_options=actor_options(settings),
                                **scaling_options(settings))
    return Ingress.options(user_config=settings.ingress_config()).bind(model.bind())


def app(args: dict[str, str]) -> Application:
    """The application builder for ``serve run vaegan_dist.serve.app:app checkpoint=RUN [data=SHARDS]
    [replicas=N | autoscale=MIN-MAX] [vector_images=N] [batching=false] [gpu=true] [allowed_hosts=NAME,...]``
    and for a Serve config file's ``args``; ``allowed_hosts`` adds to the local names (``*``: any)."""
    known = set(asdict(ServeSettings(checkpoint="")))
    unknown = sorted(set(args) - known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: not an argument of vaegan_dist.serve.app:app; it takes {', '.join(known)}")
    if not args.get("checkpoint"):
        raise ConfigError("checkpoint=RUN is required (a run directory, checkpoint directory or state.pt)")
    flag = {"true": True, "false": False}

    def boolean(key: str, default: bool) -> bool:
        value = str(args.get(key, default)).lower()
        if value not in flag:
            raise ConfigError(f"{key}={args[key]!r}: expected true or false")
        return flag[value]

    def integer(key: str, default: int, low: int, high: int) -> int:
        value = str(args.get(key, default)).strip()
        if not _digits(value) or not low <= int(value) <= high:
            raise ConfigError(f"{key}={str(args[key])[:40]!r}: expected a whole number from {low} to {high}")
        return int(value)

    hosts = tuple(h.strip().lower() for h in str(args.get("allowed_hosts", "")).split(",") if h.strip())
    settings = ServeSettings(checkpoint=str(args["checkpoint"]), data=args.get("data") or None,
                             vector_images=integer("vector_images", PAPER_IMAGES, *VECTOR_IMAGES_RANGE),
                             replicas=integer("replicas", 1, 1, MAX_REPLICAS),
                             autoscale=parse_autoscale(str(args["autoscale"])) if args.get("autoscale") else None,
                             batching=boolean("batching", True), gpu=boolean("gpu", False),
                             allowed_hosts=LOCAL_HOSTS + hosts)
    return build(settings)


# Ray 2.60's `serve build` imports an Application and refuses a builder function such as ``app``: this one has
# every default and no checkpoint. The file it writes lists the model deployment's user_config, where the
# checkpoint goes (``reconfigure`` refuses to start without one, naming that key).
template: Application = build(ServeSettings(checkpoint=""))
