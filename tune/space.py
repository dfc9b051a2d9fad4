"""Search spaces: a YAML file that maps config keys to distributions, checked in full before Ray starts.

    objective.gamma: {loguniform: [1.0e-7, 1.0e-1]}
    optim.lr_decoder: {loguniform: [3.0e-5, 3.0e-3]}
    data.batch_size: {choice: [16, 32, 64]}
    objective.equilibrium_margin: {uniform: [0.2, 0.5]}
    objective.generator_loss: {grid: [minimax, non_saturating]}

Every value a trial could get is checked against the config's own types and constraints with the sweep's
base config (preset and overrides), so an impossible range fails here, in one line naming the file and
the key, and not as an errored trial an hour into a sweep. Numbers are read with ``float()`` because
YAML 1.1 reads ``1e-7`` (no dot) as a string.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vaegan_dist.config import Config, ConfigError, key_type, set_key, validate

DISTRIBUTIONS = ("loguniform", "uniform", "choice", "grid")
CONTINUOUS = ("loguniform", "uniform")
MAX_VALUES = 1000  # choices or grid values of one key
MAX_TRIALS = 10_000  # trials of one sweep, grid keys included
MAX_JOINT_CHECKS = 4096  # combinations of values checked together before Ray starts

# Keys a sweep decides itself, or that would make trials incomparable or unplaceable.
NOT_SWEPT = {
    "train.name": "each trial's run is named after its trial id",
    "train.storage_path": "trials live under the sweep's directory",
    "train.steps": "every trial trains for the same steps (ASHA's max_t); set it as an override",
    "train.eval_every": "the scheduler compares trials at the same evaluation steps; set it as an override",
    "train.workers": "every trial needs the same resources; set it as an override",
    "train.cpus_per_worker": "every trial needs the same resources; set it as an override",
    "train.device": "every trial needs the same resources; set it as an override",
    "train.evaluator": "the metric must mean the same for every trial",
    "train.eval_samples": "the metric must mean the same for every trial",
    "data.source": "the metric must mean the same for every trial",
    "data.split": "the metric must mean the same for every trial",
    "data.cache_dir": "the metric must mean the same for every trial",
    "ray.address": "the sweep runs on one cluster",
    "data.image_size": "the data is opened and checked once for every trial",
    "data.synthetic_samples": "the data is opened and checked once for every trial",
    "train.log_every": "a training loss reaches the scheduler as the mean of the last log interval, which must "
                       "be as long for every trial; set it as an override",
    "model.sync_batchnorm": "every trial needs the same resources; set it as an override",
}


@dataclass(frozen=True)
class Dimension:
    """One swept key: ``kind`` is one of DISTRIBUTIONS; ``values`` the bounds or the choices, typed."""

    key: str
    kind: str
    values: tuple[Any, ...]

    def tune_domain(self):
        from ray import tune

        if self.kind == "loguniform":
            return tune.loguniform(*self.values)
        if self.kind == "uniform":
            return tune.uniform(*self.values)
        if self.kind == "choice":
            return tune.choice(list(self.values))
        return tune.grid_search(list(self.values))


@dataclass(frozen=True)
class SearchSpace:
    path: str
    dimensions: tuple[Dimension, ...]

    @property
    def grid_size(self) -> int:
        """Trials one pass over the grid keys makes (1 when there are none)."""
        return math.prod(len(d.values) for d in self.dimensions if d.kind == "grid")

    def for_search(self, search: str) -> dict[str, Any]:
        """Ray Tune's ``param_space`` for ``search`` (random, grid or optuna)."""
        for d in self.dimensions:
            if search == "grid" and d.kind in CONTINUOUS:
                raise ConfigError(f"{self.path}: key {d.key!r} is {d.kind}; --search grid needs grid or choice "
                                  "values for every key")
            if search == "optuna" and d.kind == "grid":
                raise ConfigError(f"{self.path}: key {d.key!r} is a grid; --search optuna samples, use choice")
        if search == "grid":
            return {d.key: Dimension(d.key, "grid", d.values).tune_domain() for d in self.dimensions}
        return {d.key: d.tune_domain() for d in self.dimensions}

    def trial_count(self, search: str, trials: int | None) -> tuple[int, int]:
        """(Tune's num_samples, the trials that makes): grid search runs every combination once; random
        and optuna draw ``trials`` samples, each crossed with the grid keys (Ray Tune's semantics)."""
        if search == "grid":
            size = math.prod(len(d.values) for d in self.dimensions)
            if trials is not None and trials != size:
                raise ConfigError(f"--trials {trials}: --search grid runs each of the {size} combinations in "
                                  f"{self.path} once; leave --trials out")
            samples, total = 1, size
        else:
            samples = trials if trials is not None else 8
            total = samples * self.grid_size
        if total > MAX_TRIALS:
            raise ConfigError(f"{self.path}: this sweep would run {total} trials; at most {MAX_TRIALS}")
        return samples, total


def _number(path: str, key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{path}: key {key!r}: {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"{path}: key {key!r}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ConfigError(f"{path}: key {key!r}: {value!r} is not a finite number")
    return number


def _check_value(path: str, key: str, value: Any, base: Config) -> Any:
    """``value`` converted to the key's type, and valid together with the rest of the base config."""
    cfg = copy.deepcopy(base)
    try:
        set_key(cfg, key, value)
        validate(cfg)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    parts = key.split(".")
    return getattr(getattr(cfg, parts[0]), parts[1])


def _dimension(path: str, key: Any, spec: Any, base: Config) -> Dimension:
    if not isinstance(key, str):
        raise ConfigError(f"{path}: key {key!r} is not a config key (expected e.g. objective.gamma)")
    try:
        tp = key_type(key)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    if key in NOT_SWEPT or key == "preset":
        raise ConfigError(f"{path}: key {key!r} cannot be swept: {NOT_SWEPT.get(key, 'choose it with --preset')}")
    if not isinstance(spec, dict) or len(spec) != 1:
        raise ConfigError(f"{path}: key {key!r}: expected one distribution such as {{loguniform: [1.0e-6, 1.0e-2]}}, "
                          f"got {spec!r}"[:300])
    (kind, values), = spec.items()
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{path}: key {key!r}: unknown distribution {kind!r}; use one of {', '.join(DISTRIBUTIONS)}")
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{path}: key {key!r}: {kind} needs a non-empty list, got {values!r}"[:300])
    if kind in CONTINUOUS:
        if tp is not float:
            raise ConfigError(f"{path}: key {key!r} takes {getattr(tp, '__name__', 'one of fixed values')}, not a "
                              f"continuous range: use choice or grid")
        if len(values) != 2:
            raise ConfigError(f"{path}: key {key!r}: {kind} needs [low, high], got {values!r}"[:300])
        low, high = (_number(path, key, v) for v in values)
        if not low < high:
            raise ConfigError(f"{path}: key {key!r}: {kind} range [{low:g}, {high:g}] is empty (low must be < high)")
        if kind == "loguniform" and low <= 0:
            raise ConfigError(f"{path}: key {key!r}: loguniform needs low > 0, got {low:g}")
        return Dimension(key, kind, tuple(_check_value(path, key, v, base) for v in (low, high)))
    if len(values) > MAX_VALUES:
        raise ConfigError(f"{path}: key {key!r}: {len(values)} values; at most {MAX_VALUES}")
    typed = tuple(_check_value(path, key, _number(path, key, v) if tp is float else v, base) for v in values)
    if len(set(map(repr, typed))) != len(typed):
        raise ConfigError(f"{path}: key {key!r}: {kind} lists a value twice ({list(typed)})")
    return Dimension(key, kind, typed)


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice (PyYAML would keep the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise ConfigError(f"key {key!r} is given twice")
            seen.add(key if isinstance(key, str) else repr(key))
        return super().construct_mapping(node, deep=deep)


def _check_together(space: SearchSpace, base: Config) -> None:
    """Values valid one by one can be invalid together (a margin above a swept equilibrium_value): check
    every combination of the bounds and the listed values, or a seeded sample of them when there are many."""
    import itertools
    import random

    if len(space.dimensions) < 2:
        return
    candidates = [d.values for d in space.dimensions]
    total = math.prod(len(c) for c in candidates)
    if total <= MAX_JOINT_CHECKS:
        combos = itertools.product(*candidates)
    else:
        rng = random.Random(0)
        combos = (tuple(rng.choice(c) for c in candidates) for _ in range(MAX_JOINT_CHECKS))
    for combo in combos:
        cfg = copy.deepcopy(base)
        for d, value in zip(space.dimensions, combo):
            set_key(cfg, d.key, value)
        try:
            validate(cfg)
        except ConfigError as err:
            together = ", ".join(f"{d.key}={v}" for d, v in zip(space.dimensions, combo))
            raise ConfigError(f"{space.path}: a trial could get {together}, and then {err}") from None


def parse_space(text: str, path: str, base: Config) -> SearchSpace:
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a search space") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: expected a mapping of config keys to distributions, e.g. "
                          "'objective.gamma: {loguniform: [1.0e-7, 1.0e-1]}'")
    space = SearchSpace(path, tuple(_dimension(path, key, spec, base) for key, spec in raw.items()))
    _check_together(space, base)
    return space


def load_space_text(path: str | Path) -> tuple[str, str]:
    """(text, resolved file name) of ``--space``: a file, or the name of a ready one in tune/spaces such as
    ``gamma``. The text, not the parsed space, is what sweep.json keeps."""
    file = resolve_space_path(path)
    try:
        return file.read_text(), str(file)
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{file}: unreadable ({getattr(err, 'strerror', None) or err})") from None


SPACES_DIR = Path(__file__).parent / "spaces"


def ready_spaces() -> list[str]:
    """The names of the ready search spaces, one YAML file each in tune/spaces: the one list help and errors show."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def resolve_space_path(path: str | Path) -> Path:
    file = Path(path).expanduser()
    if not file.exists() and file.suffix == "" and (SPACES_DIR / f"{file.name}.yaml").is_file():
        return SPACES_DIR / f"{file.name}.yaml"
    if not file.exists():
        raise ConfigError(f"--space {path}: no such file (ready spaces: {', '.join(ready_spaces())})")
    if not file.is_file():
        raise ConfigError(f"--space {path}: not a regular file")
    return file
