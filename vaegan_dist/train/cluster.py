"""The driver's view of the Ray cluster: connecting, and refusing, before training starts, storage or data
that some node cannot reach (Ray itself only notices when the first checkpoint upload fails)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from vaegan_dist.config import Config, ConfigError
from vaegan_dist.data.manifest import DataError
from vaegan_dist.data.sources import is_remote
from vaegan_dist.ray_compat import quiet_local_cluster
from vaegan_dist.train.ray_reaper import start_reaper  # imported before ray.init: see connect
from vaegan_dist.train.storage import is_url


def connect(address: str) -> None:
    """Join the cluster at ``address``, or (none given) the one Ray finds or starts on this machine; a Ray we
    start here ends with this driver, even after kill -9 (:mod:`vaegan_dist.train.ray_reaper`)."""
    import ray

    if not ray.is_initialized():
        # Nothing of ours is imported between ray.init and start_reaper: under `ray job submit` to two Ray nodes
        # on one machine, the driver's ray.init makes the other node unpack the job's working directory again
        # into the same session directory, and an import in those ~30 ms failed (CI, 2026-12-02).
        quiet_local_cluster(address)
        context = ray.init(address=address or None)
        if not address:
            start_reaper(str(context.address_info.get("session_dir", "")), ray.get_runtime_context().get_node_id())


def alive_nodes() -> list[dict]:
    import ray

    return [n for n in ray.nodes() if n.get("Alive")]


def _exists_on_every_node(path: str, nodes: list[dict]) -> list[str]:
    """Addresses of the nodes on which ``path`` does not exist."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    @ray.remote(num_cpus=0)
    def exists(p: str) -> bool:
        return os.path.exists(p)

    checks = {n["NodeManagerAddress"]: exists.options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(path) for n in nodes}
    return [address for address, ref in checks.items() if not ray.get(ref, timeout=60)]


def check_reachable(cfg: Config) -> None:
    """Storage and data must be visible to every node of a multi-node cluster."""
    nodes = alive_nodes()
    if len(nodes) <= 1:
        return
    storage = cfg.train.storage_path
    if not is_url(storage):
        if not cfg.train.shared_storage:
            raise ConfigError(
                f"config key 'train.storage_path' is a local path ({storage}) but the cluster has {len(nodes)} "
                "nodes: use s3://..., gs://..., or an NFS mount on every node with train.shared_storage=true")
        root = Path(storage)
        root.mkdir(parents=True, exist_ok=True)
        marker = root / f".reachable-{uuid.uuid4().hex}"  # in the storage root: the run is not written yet
        marker.write_text("")
        try:
            missing = _exists_on_every_node(str(marker), nodes)
        finally:
            marker.unlink(missing_ok=True)
        if missing:
            raise ConfigError(f"config key 'train.storage_path' ({storage}) is not shared: node(s) "
                              f"{', '.join(missing)} cannot see it")
    if cfg.data.source and not is_remote(cfg.data.source) and "{" not in cfg.data.source:
        manifest = Path(cfg.data.source) / "manifest.json"
        missing = _exists_on_every_node(str(manifest), nodes)
        if missing:
            raise DataError(f"{cfg.data.source}: not visible on node(s) {', '.join(missing)}; put the shards on "
                            "shared storage (NFS) or serve them over http(s)://, s3:// or gs://")
