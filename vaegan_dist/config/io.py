"""Read and write config.yaml. Writes go to a temporary name first, so an old file is never half-replaced."""

from __future__ import annotations

from pathlib import Path

import yaml

from vaegan_dist.atomic import atomic_write_text
from vaegan_dist.config.errors import ConfigError
from vaegan_dist.config.parse import config_from_dict, config_to_dict
from vaegan_dist.config.schema import Config
from vaegan_dist.config.validate import validate


def save_config(cfg: Config, path: Path) -> None:
    atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(cfg), sort_keys=False))


def load_config(path: Path) -> Config:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    return validate(config_from_dict(data, source=str(path)))
