"""``vaegan-dist serve``: check everything a user can get wrong before Ray starts (one line each), then run the
application on this machine's Ray (or the cluster at ``--address``) until Ctrl-C, or write the Serve config
file that ``serve deploy`` runs on a cluster."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import yaml

from vaegan_dist.serve.app import ServeSettings, parse_autoscale, scaling_options

APP_NAME = "vaegan-dist"


def settings_from(args: argparse.Namespace) -> ServeSettings:
    """The CLI's options as settings, with the checkpoint (and, for edits, its data) checked here."""
    from vaegan_dist.evaluate.run import data_to_use
    from vaegan_dist.model import load_model
    from vaegan_dist.model.store import resolve_checkpoint

    checkpoint = resolve_checkpoint(args.checkpoint)  # FileNotFoundError: one line naming it
    model, cfg, _ = load_model(checkpoint)  # CheckpointError: one line
    data = args.data
    if model.can_reconstruct and not model.conditioned:  # the attribute vectors need the data
        data = data_to_use(cfg, args.data, " (the attribute vectors for POST /edit come from it)")
    return ServeSettings(checkpoint=str(checkpoint), data=data, vector_images=args.vector_images,
                         replicas=args.replicas, autoscale=parse_autoscale(args.autoscale) if args.autoscale else None,
                         batching=not args.no_batching)


def serve_checkpoint(args: argparse.Namespace) -> None:
    from ray import serve

    from vaegan_dist.serve.app import build
    from vaegan_dist.train.cluster import connect

    settings = settings_from(args)
    connect(args.address)
    import ray

    settings = dataclasses.replace(settings, gpu=ray.cluster_resources().get("GPU", 0) > 0)
    serve.start(http_options={"host": args.host, "port": args.port})
    try:
        serve.run(build(settings), name=APP_NAME, route_prefix="/")
        print(f"serving {settings.checkpoint} at http://{args.host}:{args.port}/ (the face-editing page; "
              f"/info, /sample, /reconstruct, /edit, /interpolate, /healthz). Ctrl-C stops it.", flush=True)
        while True:
            time.sleep(3600)
    finally:  # only our application: on a shared cluster, serve.shutdown() would end everyone's
        serve.delete(APP_NAME)


def write_serve_config(args: argparse.Namespace) -> Path:
    """A Serve config file (``serve deploy``) for our ``template`` application, everything we set in the model
    deployment's options. The checkpoint is in its user_config rather than in builder ``args``: deploying the
    file again with another checkpoint is then a lightweight update, ``reconfigure`` in place, so a checkpoint
    that fails to load leaves the old model serving (a change of ``args`` replaces the replicas)."""
    from ray.serve.schema import ServeDeploySchema

    from vaegan_dist.atomic import atomic_write_text, check_output_file
    from vaegan_dist.serve.model_server import ModelServer

    settings = settings_from(args)
    out = check_output_file(args.write_config, "--write-config", (".yaml", ".yml"), "a Serve config file")
    model: dict[str, object] = {"name": ModelServer.name, **scaling_options(settings),
                                "user_config": settings.model_config(),
                                "ray_actor_options": {"num_cpus": 1, "num_gpus": 0}}
    config = {"http_options": {"host": args.host, "port": args.port},
              "applications": [{"name": APP_NAME, "route_prefix": "/", "import_path": "vaegan_dist.serve.app:template",
                                "deployments": [model]}]}
    ServeDeploySchema.model_validate(config)  # what `serve deploy` will check
    atomic_write_text(out, "# vaegan-dist serve: `serve deploy` this file on a running Ray cluster (paths as the "
                           "cluster's nodes see them). To swap the model, change user_config.checkpoint and deploy "
                           "it again. A GPU per model replica: ray_actor_options num_gpus: 1, num_cpus: 0. Other "
                           "machines reach the service only with http_options host: 0.0.0.0.\n"
                      + yaml.safe_dump(config, sort_keys=False))
    return out
