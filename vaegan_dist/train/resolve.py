"""Run resolution: a validated config becomes a :class:`TrainJob` once, on the driver (absolute paths, a run
name, the data source opened and checked, the built-in data set rendered once, the evaluator found), so that
bad input fails in seconds there instead of inside N workers, and no worker resolves anything again."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

from vaegan_dist.config import Config, ConfigError
from vaegan_dist.data.sources import canonical, open_sources
from vaegan_dist.data.stream import check_image_size
from vaegan_dist.data.synthetic import ensure_synthetic, is_built_in
from vaegan_dist.errors import DataError
from vaegan_dist.evaluate.train_evaluator import no_evaluator_hint, resolve_evaluator
from vaegan_dist.train.job import TrainJob
from vaegan_dist.train.storage import RunStorage, is_url


def resolve_run(cfg: Config, now: datetime.datetime | None = None) -> TrainJob:
    """The job for ``cfg`` (already validated): absolute paths, a run name, the data opened and checked."""
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data), train=dataclasses.replace(cfg.train))
    if not is_url(cfg.train.storage_path):
        cfg.train.storage_path = str(Path(cfg.train.storage_path).expanduser().resolve())
    elif cfg.train.workers == "0":
        raise ConfigError(f"config key 'train.storage_path' is a URL ({cfg.train.storage_path}); train.workers=0 "
                          "(no Ray) writes checkpoints to local or NFS paths only")
    if not cfg.train.name:
        cfg.train.name = f"{cfg.preset}-{(now or datetime.datetime.now()).strftime('%Y%m%d-%H%M%S')}"
    built_in = not cfg.data.source or is_built_in(cfg.data.source, cfg.data.cache_dir)
    if cfg.data.source:
        cfg.data.source = canonical(cfg.data.source)
    else:
        cfg.data.source = str(ensure_synthetic(Path(cfg.data.cache_dir), cfg.data.synthetic_samples,
                                               cfg.data.image_size))
    sources = open_sources(cfg.data.source, cfg.data.split, optional=("valid",))  # one manifest read
    check_image_size(sources[cfg.data.split], cfg.data.image_size)
    if cfg.model.condition == "attributes" and not sources[cfg.data.split].attributes:
        raise ConfigError(f"config key 'model.condition': 'attributes' needs data with attributes, and "
                          f"{sources[cfg.data.split].where} has none (prepare folder takes them with --attributes)")
    grid_split = "valid" if "valid" in sources else cfg.data.split  # grids show images the model never trains on
    evaluator = None
    if cfg.train.eval_every > 0:
        try:
            found = resolve_evaluator(sources[cfg.data.split], cfg.data.cache_dir, cfg.train.evaluator,
                                      built_in=built_in)
        except (FileNotFoundError, IsADirectoryError) as err:
            raise ConfigError(f"config key 'train.evaluator': {err}") from None
        if found is None:
            print(f"warning: {no_evaluator_hint(sources[cfg.data.split])}; until then eval/* metrics are off")
        elif 0 < sources[grid_split].samples <= 3:
            raise DataError(f"{sources[grid_split].where}: split {grid_split!r} has {sources[grid_split].samples} "
                            "images; evaluation needs more than 3 (or set train.eval_every=0)")
        else:
            evaluator = found.state()
    return TrainJob(cfg, RunStorage(cfg.train.storage_path, cfg.train.name), sources[cfg.data.split],
                    sources[grid_split], grid_split, evaluator)
