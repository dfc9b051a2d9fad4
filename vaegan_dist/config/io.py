"""Write config.yaml (readable by a person; the run's own copy is read back with ``config_from_dict``).
Writes go to a temporary name first, so an old file is never half-replaced."""

from __future__ import annotations

from pathlib import Path

import yaml

from vaegan_dist.atomic import atomic_write_text
from vaegan_dist.config.parse import config_to_dict
from vaegan_dist.config.schema import Config


def save_config(cfg: Config, path: Path) -> None:
    atomic_write_text(Path(path), yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
