"""Turn ``key=value`` strings and plain dicts (saved YAML, checkpoints) into a typed :class:`Config`.

Values are converted with the field's own type annotation, so ``train.steps=1e3`` is refused (steps is
an int) and ``objective.fakes=foo`` names the allowed choices. Errors are one line naming the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from functools import cache
from typing import Any, Literal

from vaegan_dist.config.errors import ConfigError
from vaegan_dist.config.schema import Config

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@cache
def _fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def all_keys(cls: type = Config, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the config, e.g. ``train.steps``."""
    keys = []
    for name, tp in _fields(cls).items():
        if dataclasses.is_dataclass(tp):
            keys += all_keys(tp, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _unknown_key(key: str) -> ConfigError:
    close = difflib.get_close_matches(key, all_keys(), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown config key {key!r}{hint}")


def convert(key: str, tp: Any, value: Any) -> Any:
    """Convert ``value`` (a string from the CLI or a YAML scalar) to the annotated type ``tp``."""
    if typing.get_origin(tp) is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"config key {key!r} must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ConfigError(f"config key {key!r} expects true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ConfigError(f"config key {key!r} expects an integer, got {value!r}")
        try:
            return int(value) if not isinstance(value, str) else int(value.strip().replace("_", ""))
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"config key {key!r} expects an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key {key!r} expects a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"config key {key!r} expects a number, got {value!r}") from None
        if not math.isfinite(number):  # inf or nan would pass every range check below and poison training
            raise ConfigError(f"config key {key!r} must be a finite number, got {value!r}")
        return number
    if tp is str:
        return "" if value is None else str(value)
    raise TypeError(f"config key {key!r} has an unsupported type {tp!r}")  # a schema bug, not user input


def _leaf_type(key: str) -> tuple[list[str], Any]:
    parts = key.split(".")
    cls: Any = Config
    for i, part in enumerate(parts):
        fields = _fields(cls) if dataclasses.is_dataclass(cls) else {}
        if part not in fields:
            raise _unknown_key(key)
        cls = fields[part]
        if i < len(parts) - 1 and not dataclasses.is_dataclass(cls):
            raise _unknown_key(key)
    if dataclasses.is_dataclass(cls):
        raise ConfigError(f"config key {key!r} is a group; set one of its keys, e.g. {all_keys(cls, key + '.')[0]!r}")
    return parts, cls


def key_type(key: str) -> Any:
    """The annotated type of a dotted leaf key (``float`` for ``objective.gamma``); unknown keys and groups
    are one-line errors with a close match."""
    return _leaf_type(key)[1]


def set_key(cfg: Config, key: str, value: Any) -> None:
    """Set one dotted key in place, converting and checking the type."""
    parts, tp = _leaf_type(key)
    if key == "preset":
        raise ConfigError("config key 'preset' is chosen with --preset, not as an override")
    target: Any = cfg
    for part in parts[:-1]:
        target = getattr(target, part)
    setattr(target, parts[-1], convert(key, tp, value))


def apply_overrides(cfg: Config, overrides: list[str]) -> Config:
    """Apply ``key=value`` strings in order; later ones win."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value")
        set_key(cfg, key.strip(), value)
    return cfg


def config_from_dict(data: dict[str, Any], source: str = "config") -> Config:
    """Rebuild a Config from ``dataclasses.asdict`` output (a saved config.yaml or a checkpoint)."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    cfg = Config(preset=str(data.get("preset", "celeba64")))
    for group, values in data.items():
        if group == "preset":
            continue
        if not isinstance(values, dict):
            raise ConfigError(
                f"{source}: "
                f"{_unknown_key(group) if group not in _fields(Config) else f'group {group!r} is not a mapping'}")
        for name, value in values.items():
            try:
                set_key(cfg, f"{group}.{name}", value)
            except ConfigError as err:
                raise ConfigError(f"{source}: {err}") from None
    return cfg


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def config_to_flat_dict(cfg: Config) -> dict[str, Any]:
    """``{"train.steps": 400, ...}``: every leaf under the key a user overrides it with."""
    return {f"{group}.{k}": v for group, values in config_to_dict(cfg).items() if isinstance(values, dict)
            for k, v in values.items()}
