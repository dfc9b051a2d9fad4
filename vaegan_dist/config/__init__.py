"""Typed configs, named presets and ``key=value`` overrides.

    >>> from vaegan_dist.config import build_config
    >>> cfg = build_config("smoke", ["train.steps=50", "objective.gamma=0.01"])
    >>> cfg.train.steps, cfg.data.image_size
    (50, 32)
"""

from __future__ import annotations

from vaegan_dist.config.errors import ConfigError
from vaegan_dist.config.io import save_config
from vaegan_dist.config.parse import (
    all_keys,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    config_to_flat_dict,
    key_type,
    set_key,
)
from vaegan_dist.config.presets import FITS, PRESETS, preset
from vaegan_dist.config.schema import (
    Config,
    DataConfig,
    ModelConfig,
    ObjectiveConfig,
    OptimConfig,
    RayConfig,
    TrainConfig,
)
from vaegan_dist.config.validate import validate


def build_config(preset_name: str = "smoke", overrides: list[str] | None = None) -> Config:
    """Preset, then overrides in order, then what the preset fits to the machine (:data:`presets.FITS`), then
    validation."""
    overrides = list(overrides or [])
    cfg = apply_overrides(preset(preset_name), overrides)
    fit = FITS.get(preset_name)
    return validate(fit(cfg, {item.partition("=")[0].strip() for item in overrides}) if fit else cfg)


__all__ = [
    "Config", "DataConfig", "ModelConfig", "ObjectiveConfig", "OptimConfig", "TrainConfig", "RayConfig",
    "ConfigError", "PRESETS", "preset", "build_config", "apply_overrides", "config_from_dict",
    "config_to_dict", "config_to_flat_dict", "validate", "save_config", "all_keys", "key_type", "set_key",
]
