"""Reading run directories for the report: everything the page shows of one run, read once, checked, and
never trusted more than a downloaded file. Nothing here writes, and nothing here knows HTML."""

from __future__ import annotations

import base64
import json
import math
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from vaegan_dist.config import ConfigError
from vaegan_dist.errors import CheckpointError
from vaegan_dist.evaluate.model_metrics import METRICS
from vaegan_dist.evaluate.records import (
    EditRecord,
    PretrainingRecord,
    ResultFormatError,
    ResultRecord,
    SimilarityRecord,
)
from vaegan_dist.evaluate.results import FILES, RESULTS_DIR
from vaegan_dist.model.store import RUN_MARKER, checkpoint_step, find_checkpoints, saved_evaluation

MAX_RUNS = 32
MAX_FILE_BYTES = 20 * 1024 * 1024  # an image (or result file) larger than this is not embedded
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass
class Picture:
    """A PNG ready to embed (``src`` a data: URI), or the reason it is not (``problem``)."""

    path: Path
    step: Any  # the training step it shows ("?" when its file does not say)
    src: str = ""
    width: int = 0
    height: int = 0
    problem: str = ""


@dataclass
class RunView:
    """What the page shows of one run."""

    path: Path
    config: dict[str, Any]
    kind: str
    steps: str  # the newest checkpoint against train.steps, in words
    metrics: dict[str, float | None]
    metrics_source: str  # where the metrics come from ("" when the run has none)
    samples: Picture | None  # the newest grid
    reconstructions: Picture | None
    edit: EditRecord | None
    edit_grid: Picture | None
    similarity: SimilarityRecord | None
    pretraining: PretrainingRecord | None

    @property
    def name(self) -> str:
        return self.path.name

    def setting(self, section: str, key: str) -> str | int | float | bool | None:
        """A scalar setting of config.yaml; anything else (a list, a map, YAML aliases) is not shown."""
        value = self.config.get(section)
        found = value.get(key) if isinstance(value, dict) else None
        return found if isinstance(found, (str, int, float, bool)) or found is None else "(not a single value)"


def check_runs(runs: Sequence[str | Path]) -> list[Path]:
    """Each a run directory of ours (the run marker or a config.yaml), none twice, at most MAX_RUNS."""
    if not runs:
        raise ConfigError("--runs: name at least one run directory")
    if len(runs) > MAX_RUNS:
        raise ConfigError(f"--runs: {len(runs)} run directories; one page shows at most {MAX_RUNS}")
    found: dict[Path, Path] = {}
    for given in runs:
        run = Path(os.path.abspath(Path(given).expanduser()))
        if not run.exists():
            raise FileNotFoundError(f"{run}: no such run directory")
        if not run.is_dir():
            raise NotADirectoryError(f"{run}: not a directory; --runs names run directories")
        if not (run / RUN_MARKER).is_file() and not (run / "config.yaml").is_file():
            raise ConfigError(f"{run}: not a vaegan-dist run directory (no {RUN_MARKER} marker, no config.yaml)")
        if run.resolve() in found:
            raise ConfigError(f"--runs: {run} is given twice (as {found[run.resolve()]})")
        found[run.resolve()] = run
    return list(found.values())


def read_run(run: Path, warnings: list[str]) -> RunView:
    """Everything about ``run`` the page shows; what cannot be read is left out with one line in ``warnings``."""
    config = _read_config(run, warnings)
    metrics_file = _read_metrics(run, warnings)
    if metrics_file is not None:
        metrics = {k: _finite(metrics_file.get(k)) for k in METRICS}
        source = (f"evaluate: {metrics_file.get('num', '?')} {metrics_file.get('split', '?')} images, "
                  f"step {metrics_file.get('step', '?')}")
    else:
        metrics, step = _training_metrics(run, warnings)
        source = f"step {step} (from training's last evaluation)" if metrics else ""
    model = config.get("model")
    kind = model.get("kind") if isinstance(model, dict) else None
    kind = str(kind or (metrics_file or {}).get("model_kind") or "unknown")
    edit = _read_record(run, "edit", EditRecord, warnings)
    grid = run / RESULTS_DIR / FILES["edit_grid"]
    train = config.get("train")
    return RunView(path=run, config=config, kind=kind,
                   steps=_steps(run, train.get("steps") if isinstance(train, dict) else None),
                   metrics=metrics, metrics_source=source,
                   samples=_newest_grid(run, "samples"), reconstructions=_newest_grid(run, "reconstructions"),
                   edit=edit, edit_grid=_picture(grid, edit.step if edit else "?") if grid.is_file() else None,
                   similarity=_read_record(run, "similarity", SimilarityRecord, warnings),
                   pretraining=_read_record(run, "pretraining", PretrainingRecord, warnings))


def _read_config(run: Path, warnings: list[str]) -> dict[str, Any]:
    path = run / "config.yaml"
    if not path.is_file():
        return {}
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            warnings.append(f"{path}: larger than {MAX_FILE_BYTES >> 20} MB; its settings are left out")
            return {}
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError, yaml.YAMLError) as err:
        warnings.append(f"{path}: not readable YAML ({type(err).__name__}); its settings are left out")
        return {}
    if not isinstance(config, dict):
        warnings.append(f"{path}: not a mapping of config keys; its settings are left out")
        return {}
    return config


def _read_json(path: Path, warnings: list[str]) -> Any | None:
    try:
        if not path.is_file():
            return None
        if path.stat().st_size > MAX_FILE_BYTES:
            warnings.append(f"{path}: larger than {MAX_FILE_BYTES >> 20} MB; left out")
            return None
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        warnings.append(f"{path}: not readable JSON ({type(err).__name__}); left out")
        return None


def _read_metrics(run: Path, warnings: list[str]) -> dict[str, Any] | None:
    """``evaluate --json``'s output: every metric a number or null (the rest is descriptive)."""
    path = run / RESULTS_DIR / FILES["metrics"]
    data = _read_json(path, warnings)
    if data is None:
        return None
    if not isinstance(data, dict):
        warnings.append(f"{path}: not a JSON object; left out")
        return None
    bad = [k for k in METRICS if data.get(k) is not None and _number(data.get(k)) is None]
    if bad:
        warnings.append(f"{path}: {', '.join(bad)}: not a number or null; left out")
        return None
    return data


def _read_record(run: Path, name: str, record: type[ResultRecord], warnings: list[str]) -> Any | None:
    path = run / RESULTS_DIR / FILES[name]
    data = _read_json(path, warnings)
    if data is None:
        return None
    try:
        return record.from_json(data)
    except ResultFormatError as err:
        warnings.append(f"{path}: {err}; left out")
        return None


def _training_metrics(run: Path, warnings: list[str]) -> tuple[dict[str, float | None], int | None]:
    """The newest checkpoint's ``eval/*`` metrics, without the prefix ({} when it has none)."""
    if not find_checkpoints(run):
        return {}, None
    try:
        step, saved = saved_evaluation(run)
    except (FileNotFoundError, CheckpointError) as err:
        warnings.append(f"{err}; its metrics are left out")
        return {}, None
    return {name: _finite(value) for name, value in saved.items()}, step


def _steps(run: Path, target: Any) -> str:
    done = [checkpoint_step(p) for p in find_checkpoints(run)]
    if not done:
        return f"no checkpoint (of {target})" if target is not None else "no checkpoint"
    return f"{done[-1]}" if target in (None, done[-1]) else f"{done[-1]} of {target}"


def _newest_grid(run: Path, prefix: str) -> Picture | None:
    """``samples/<prefix>_<step>.png`` with the highest step."""
    found = []
    for path in (run / "samples").glob(f"{prefix}_*.png"):
        digits = path.stem.removeprefix(f"{prefix}_")
        if digits.isascii() and digits.isdigit() and path.is_file():
            found.append((int(digits), path))
    if not found:
        return None
    step, path = max(found)
    return _picture(path, step)


def _picture(path: Path, step: Any) -> Picture:
    """The PNG as a data: URI, or why it is left out."""
    picture = Picture(path=path, step=step)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            picture.problem = f"{path.name}: {size / 2**20:.0f} MB, larger than {MAX_FILE_BYTES >> 20} MB; not embedded"
            return picture
        data = path.read_bytes()
    except OSError as err:
        picture.problem = f"{path.name}: not readable ({err.strerror or type(err).__name__})"
        return picture
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        picture.problem = f"{path.name}: not a PNG file; not embedded"
        return picture
    picture.width, picture.height = struct.unpack(">II", data[16:24])
    picture.src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return picture


def _number(value: Any) -> float | None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:  # an int of 400 digits
        return math.inf


def _finite(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and math.isfinite(number) else None
