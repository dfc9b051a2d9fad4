"""``vaegan-dist serve``: check everything a user can get wrong before Ray starts (one line each), then run the
application on this machine's Ray (or the cluster at ``--address``) until Ctrl-C, or write the Serve config
file that ``serve deploy`` runs on a cluster."""

from __future__ import annotations

import dataclasses
import socket
import time
from pathlib import Path

import yaml

from vaegan_dist.errors import ConfigError
from vaegan_dist.evaluate.attribute_vectors import PAPER_IMAGES
from vaegan_dist.ray_compat import starts_a_cluster
from vaegan_dist.serve.app import LOCAL_HOSTS, ServeSettings, actor_options, parse_autoscale, scaling_options

APP_NAME = "vaegan-dist"  # the default --name
REQUEST_TIMEOUT_S = 120.0  # a request the proxy has held this long is answered 408 (a slow body, a stuck call)
_EVERY_INTERFACE = ("0.0.0.0", "::", "")


def settings_for(checkpoint: str, data: str | None = None, vector_images: int = PAPER_IMAGES, replicas: int = 1,
                 autoscale: str | None = None, batching: bool = True, host: str = "127.0.0.1",
                 allow_hosts: tuple[str, ...] = (), open_data: bool = True) -> ServeSettings:
    """The service's settings, with the checkpoint and (``open_data``: serving from here) the data of its attribute
    vectors opened here, before Ray starts: a mistake is one line now, not a replica that fails after a minute. A
    config file for a cluster names paths as the cluster's nodes see them: there the data is not opened."""
    from vaegan_dist.data.sources import open_source
    from vaegan_dist.evaluate.run import data_to_use
    from vaegan_dist.model import load_model
    from vaegan_dist.model.store import resolve_checkpoint

    path = resolve_checkpoint(checkpoint)  # FileNotFoundError: one line naming it
    model, cfg, _ = load_model(path)  # CheckpointError: one line
    if model.can_reconstruct and not model.conditioned:  # the attribute vectors need the data
        if open_data:
            data = data_to_use(cfg, data, " (the attribute vectors for POST /edit come from it)")
            open_source(data, "train")  # DataError: one line naming it
        else:
            data = data or cfg.data.source
    bound = (host_header_name(host),) if host not in _EVERY_INTERFACE else ()
    hosts = LOCAL_HOSTS + bound + tuple(host_header_name(h) for h in allow_hosts)
    return ServeSettings(checkpoint=str(path), data=data, vector_images=vector_images, replicas=replicas,
                         autoscale=parse_autoscale(autoscale) if autoscale else None, batching=batching,
                         allowed_hosts=tuple(dict.fromkeys(hosts)))


def host_header_name(host: str) -> str:
    """How a Host header names ``host``: lower case, an IPv6 literal in brackets."""
    host = host.strip().lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def check_port_free(host: str, port: int) -> None:
    """The port a local Ray's proxy will listen on, tried now: taken, Serve would fail after ~30 s. With
    SO_REUSEADDR, as the proxy's own server binds: a port whose last connections wait in TIME_WAIT is free."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host or "0.0.0.0", port))
        except OSError as err:
            raise ConfigError(f"--port {port}: cannot listen on {host or '0.0.0.0'}:{port} ({err.strerror or err}); "
                              "another service has it, choose another --port") from None


def exposure_note(host: str, allowed_hosts: tuple[str, ...]) -> str:
    """What a user should know when the API listens beyond this machine: it has no authentication."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return ""
    if "*" in allowed_hosts:
        return (f"note: --host {host} serves an API without authentication to every machine that reaches this one, "
                "under any name (--allow-host '*': no protection against DNS rebinding)")
    return (f"note: --host {host} serves an API without authentication to every machine that reaches this one; "
            f"requests must name one of {', '.join(allowed_hosts)} in their Host header (--allow-host adds one)")


def serve_checkpoint(settings: ServeSettings, *, host: str, port: int, address: str = "", name: str = APP_NAME) -> None:
    """Run the application named ``name`` until Ctrl-C; on the way out delete that application only."""
    from ray import serve

    from vaegan_dist.serve.app import build
    from vaegan_dist.train.cluster import connect

    if starts_a_cluster(address):  # joining a cluster: its proxy may hold the port already, for another app
        check_port_free(host, port)
    note = exposure_note(host, settings.allowed_hosts)
    if note:
        print(note, flush=True)
    connect(address)
    import ray

    settings = dataclasses.replace(settings, gpu=ray.cluster_resources().get("GPU", 0) > 0)
    serve.start(http_options={"host": host, "port": port, "request_timeout_s": REQUEST_TIMEOUT_S})
    try:
        serve.run(build(settings), name=name, route_prefix="/")
        print(f"serving {settings.checkpoint} as {name!r} at http://{host}:{port}/ (the face-editing page; "
              f"/info, /sample, /reconstruct, /edit, /interpolate, /healthz). Ctrl-C stops it.", flush=True)
        while True:
            time.sleep(3600)
    finally:  # only our application: on a shared cluster, serve.shutdown() would end everyone's
        serve.delete(name)


def write_serve_config(settings: ServeSettings, out: Path, *, host: str, port: int, name: str = APP_NAME) -> Path:
    """A Serve config file (``serve deploy``) for our ``template`` application, everything we set in the model
    deployment's options. The checkpoint is in its user_config rather than in builder ``args``: deploying the
    file again with another checkpoint is then a lightweight update, ``reconfigure`` in place, so a checkpoint
    that fails to load leaves the old model serving (a change of ``args`` replaces the replicas)."""
    from ray.serve.schema import ServeDeploySchema

    from vaegan_dist.atomic import atomic_write_text
    from vaegan_dist.serve.http import Ingress
    from vaegan_dist.serve.model_server import ModelServer

    model: dict[str, object] = {"name": ModelServer.name, **scaling_options(settings),
                                "user_config": settings.model_config(), "ray_actor_options": actor_options(settings)}
    ingress = {"name": Ingress.name, "user_config": settings.ingress_config()}
    config = {"http_options": {"host": host, "port": port, "request_timeout_s": REQUEST_TIMEOUT_S},
              "applications": [{"name": name, "route_prefix": "/", "import_path": "vaegan_dist.serve.app:template",
                                "deployments": [model, ingress]}]}
    ServeDeploySchema.model_validate(config)  # what `serve deploy` will check
    atomic_write_text(out, "# vaegan-dist serve: `serve deploy` this file on a running Ray cluster (paths as the "
                           "cluster's nodes see them). To swap the model, change user_config.checkpoint and deploy "
                           "it again. A GPU per model replica: ray_actor_options num_gpus: 1, num_cpus: 0. Other "
                           "machines reach the service only with http_options host: 0.0.0.0, and only under the "
                           "names in the http deployment's user_config.allowed_hosts (* for any).\n"
                      + yaml.safe_dump(config, sort_keys=False))
    return out
