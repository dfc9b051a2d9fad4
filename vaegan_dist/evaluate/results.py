"""Where the experiments on a trained model leave what they found, so that ``vaegan-dist report`` can show a
run with everything measured on it: ``<run>/results/<file>``.

Every experiment command writes its own output where the user asked (``--out``, ``--json``) and, when the
checkpoint lies in a local run directory of ours (it holds the run marker), a copy here. A run directory
that is not ours, or one we cannot write, is left untouched: the copy is a convenience, never a failure.

The files (each JSON has a ``format`` key naming its schema and version; metrics.json is
``vaegan-dist evaluate --json``'s output with its format and the data it was measured on added):

    metrics.json      evaluate: fd, fd_recon, attr_agreement, ... , num, split, step, model_kind, data
    edit.png          edit: the attribute-vector grid
    edit.json         edit: per attribute and scale, the fraction of images the edit changed
    similarity.json   similarity: cosine similarity and MSE of requested vs. predicted attributes
    pretraining.json  pretraining: test accuracy per initialisation and label fraction
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from vaegan_dist.atomic import atomic_write_bytes, atomic_write_text
from vaegan_dist.model.store import RUN_MARKER, resolve_checkpoint

RESULTS_DIR = "results"
RESULTS_MARKER = ".vaegan-dist-results"  # in every results/ directory we create
METRICS_FORMAT = "vaegan-dist-metrics/1"  # the copy of evaluate's JSON kept in results/ says what it is
FILES = {
    "metrics": "metrics.json",
    "edit_grid": "edit.png",
    "edit": "edit.json",
    "similarity": "similarity.json",
    "pretraining": "pretraining.json",
}


def run_dir_of(checkpoint: str | Path) -> Path | None:
    """The run directory a checkpoint belongs to (``<run>/checkpoint_<step>/state.pt``), if it is ours."""
    try:
        state = resolve_checkpoint(checkpoint)
    except FileNotFoundError:
        return None
    run = state.resolve().parent.parent
    return run if (run / RUN_MARKER).is_file() else None


def finite_or_none(value: Any) -> Any:
    """JSON has no NaN or infinity: a metric that is not finite is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [finite_or_none(v) for v in value]
    return value


def json_text(result: dict[str, Any]) -> str:
    return json.dumps(finite_or_none(result), indent=1) + "\n"


def _ours_to_replace(path: Path, content: str | bytes) -> bool:
    """An existing result may be replaced only by our own kind of file: a JSON result of ours (it names a
    vaegan-dist format), or a PNG over a PNG. Anything else someone put there stays."""
    if not path.exists():
        return True
    if path.is_symlink() or not path.is_file():
        return False
    if isinstance(content, bytes):
        with path.open("rb") as f:
            return f.read(8) == b"\x89PNG\r\n\x1a\n"
    try:
        return str(json.loads(path.read_text()).get("format", "")).startswith("vaegan-dist-")
    except (OSError, ValueError, AttributeError):
        return False


def record(checkpoint: str | Path, name: str, content: str | bytes, log=print) -> Path | None:
    """Copy an experiment's output into the checkpoint's run directory (see the module docstring). Only a
    ``results/`` directory we made (it holds our marker) is written to, and never through a symlink."""
    run = run_dir_of(checkpoint)
    if run is None:
        return None
    directory = run / RESULTS_DIR
    path = directory / FILES[name]
    try:
        if not directory.exists() and not directory.is_symlink():
            directory.mkdir()
            (directory / RESULTS_MARKER).write_text("results of vaegan-dist experiments on this run\n")
        if directory.is_symlink() or not (directory / RESULTS_MARKER).is_file():
            log(f"warning: {directory} is not a results directory of ours; {FILES[name]} not recorded there")
            return None
        if not _ours_to_replace(path, content):
            log(f"warning: {path} is not a result of ours; left as it is")
            return None
        if isinstance(content, bytes):
            atomic_write_bytes(path, content)
        else:
            atomic_write_text(path, content)
    except OSError as err:
        log(f"warning: could not record {FILES[name]} in {run} ({err.strerror or err}); the run is unchanged")
        return None
    return path
