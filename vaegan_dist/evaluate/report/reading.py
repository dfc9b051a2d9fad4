"""``vaegan-dist report``: training runs side by side on one HTML page, like the paper's figures.

    vaegan-dist report --runs ~/vaegan-dist/runs/vae-<date> ~/vaegan-dist/runs/vaegan-<date> --out report.html

Comparing runs means looking at their sample grids next to each other and at their numbers in one table;
TensorBoard shows one run's image at a time. The page is one self-contained file (images embedded as base64
``data:`` URIs, inline CSS, a Content-Security-Policy that allows no request at all) so that it can be mailed,
attached to an issue, or opened offline long after the runs are gone. Per run it shows the config, the newest
sample and reconstruction grids, the metrics (``results/metrics.json``, else the newest checkpoint's last
evaluation during training), and the edit, similarity and pretraining results when they were run (the files
are described in :mod:`vaegan_dist.evaluate.results`).

A run directory is only read, and trusted no more than a downloaded file: every string from it is
HTML-escaped, and a result file that does not parse or has the wrong format is one warning line on the page,
never a failed report.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from vaegan_dist.atomic import atomic_write_text
from vaegan_dist.config import ConfigError
from vaegan_dist.errors import CheckpointError
from vaegan_dist.evaluate.model_metrics import METRICS, better, better_note
from vaegan_dist.evaluate.results import FILES, RESULTS_DIR
from vaegan_dist.model.store import RUN_MARKER, checkpoint_step, find_checkpoints, load_state

GENERATOR = "vaegan-dist report"  # in a <meta name="generator">
DEFAULT_TITLE = "vaegan-dist report"
MAX_RUNS = 32
MAX_FILE_BYTES = 20 * 1024 * 1024  # an image (or result file) larger than this is not embedded
SUFFIXES = (".html", ".htm")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FORMATS = {"edit": "vaegan-dist-edit/1", "similarity": "vaegan-dist-similarity/1",
           "pretraining": "vaegan-dist-pretraining/1"}
_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
# The list each result file's table is built from, and what every entry must hold (key -> allowed types).
# A file that does not fit is one warning; the renderers below trust what passed.
ROW_SCHEMAS = {
    "edit": ("results", {"attribute": (str,), "scale": _NUM, "candidates": (int, type(None)),
                         "changed": (int, type(None)), "fraction": _OPT_NUM}),  # None: no evaluator to judge
    "similarity": ("rows", {"name": (str,), "cosine": _OPT_NUM, "mse": _OPT_NUM}),
    "pretraining": ("rows", {"init": (str,), "fraction": _NUM, "labels": (int,), "accuracy": _OPT_NUM}),
}


@dataclass
class RunView:
    """What the page shows of one run, read once."""

    path: Path
    config: dict[str, Any]
    kind: str
    metrics: dict[str, float | None]
    metrics_source: str  # where the metrics come from ("" when the run has none)
    samples: tuple[int, Path] | None  # newest grid: (step, file)
    reconstructions: tuple[int, Path] | None
    edit: dict[str, Any] | None
    edit_grid: Path | None
    similarity: dict[str, Any] | None
    pretraining: dict[str, Any] | None

    @property
    def name(self) -> str:
        return self.path.name

    def setting(self, section: str, key: str) -> Any:
        value = self.config.get(section)
        return value.get(key) if isinstance(value, dict) else None


def write_report(runs: Sequence[str | Path], out: str | Path, title: str = DEFAULT_TITLE,
                 now: datetime | None = None) -> Path:
    """Check every argument, read the runs, write the page atomically; returns the page's path."""
    out = check_out(out)
    run_dirs = check_runs(runs)
    warnings: list[str] = []
    views = [read_run(run, warnings) for run in run_dirs]
    atomic_write_text(out, render_page(views, title, warnings, now or datetime.now().astimezone()))
    return out


def check_out(out: str | Path) -> Path:
    """Refuse a target that is not an HTML file. A file the user names with --out is theirs to replace (the
    project's one policy for named outputs, as cp and curl -o do), atomically."""
    out = Path(out).expanduser()
    if out.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"--out {out}: a report is an HTML file; its name ends in .html or .htm")
    if out.is_dir():
        raise IsADirectoryError(f"--out {out}: is a directory; name the HTML file to write")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"{out.parent}: output directory does not exist")
    return out


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


# ----------------------------------------------------------------------------------------------- reading


def read_run(run: Path, warnings: list[str]) -> RunView:
    config = _read_config(run, warnings)
    metrics_file = _read_result(run, "metrics", warnings)
    if metrics_file is not None:
        metrics = {k: _finite(metrics_file.get(k)) for k in METRICS}
        source = (f"evaluate: {metrics_file.get('num', '?')} {metrics_file.get('split', '?')} images, "
                  f"step {metrics_file.get('step', '?')}")
    else:
        metrics, step = _training_metrics(run, warnings)
        source = f"step {step} (from training's last evaluation)" if metrics else ""
    model = config.get("model")
    kind = model.get("kind") if isinstance(model, dict) else None
    kind = kind or (metrics_file or {}).get("model_kind") or "unknown"
    grid = run / RESULTS_DIR / FILES["edit_grid"]
    return RunView(path=run, config=config, kind=str(kind), metrics=metrics, metrics_source=source,
                   samples=_newest_grid(run, "samples"), reconstructions=_newest_grid(run, "reconstructions"),
                   edit=_read_result(run, "edit", warnings), edit_grid=grid if grid.is_file() else None,
                   similarity=_read_result(run, "similarity", warnings),
                   pretraining=_read_result(run, "pretraining", warnings))


def _read_config(run: Path, warnings: list[str]) -> dict[str, Any]:
    path = run / "config.yaml"
    if not path.is_file():
        return {}
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as err:
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


def _read_result(run: Path, name: str, warnings: list[str]) -> dict[str, Any] | None:
    """A result file of the run that fits its schema; None (and a warning) for one that does not."""
    path = run / RESULTS_DIR / FILES[name]
    data = _read_json(path, warnings)
    if data is None:
        return None
    problem = _schema_problem(name, data)
    if problem:
        warnings.append(f"{path}: {problem}; left out")
        return None
    return data


def _schema_problem(name: str, data: Any) -> str:
    if not isinstance(data, dict):
        return "not a JSON object"
    if name == "metrics":
        bad = [k for k in METRICS if not isinstance(data.get(k), _OPT_NUM)]
        return f"{', '.join(bad)}: not a number or null" if bad else ""
    if data.get("format") != FORMATS[name]:
        return f"format {str(data.get('format'))[:60]!r}, expected {FORMATS[name]!r}"
    key, schema = ROW_SCHEMAS[name]
    rows = data.get(key)
    if not isinstance(rows, list):
        return f"{key!r} is not a list"
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or any(not isinstance(row.get(k), types) for k, types in schema.items()):
            return f"{key}[{i}] lacks one of {', '.join(schema)} or has a value of the wrong type"
        axis = {"edit": "scale", "pretraining": "fraction"}.get(name)
        if axis and _finite(row[axis]) is None:  # a table axis must be a real number (NaN would break sorting)
            return f"{key}[{i}].{axis} is not a finite number"
    if name == "similarity" and not isinstance(data.get("attributes", []), list):
        return "'attributes' is not a list"
    return ""


def _training_metrics(run: Path, warnings: list[str]) -> tuple[dict[str, float | None], int | None]:
    """The newest checkpoint's ``eval/*`` metrics, without the prefix ({} when it has none)."""
    if not find_checkpoints(run):
        return {}, None
    try:
        state = load_state(run)
    except (FileNotFoundError, CheckpointError) as err:
        warnings.append(f"{err}; its metrics are left out")
        return {}, None
    saved = state.get("metrics")
    if not isinstance(saved, dict):
        return {}, None
    metrics = {k.removeprefix("eval/"): _finite(v) for k, v in saved.items()
               if isinstance(k, str) and k.startswith("eval/")}
    return metrics, state.get("step")


def _newest_grid(run: Path, prefix: str) -> tuple[int, Path] | None:
    """``samples/<prefix>_<step>.png`` with the highest step."""
    found = []
    for path in (run / "samples").glob(f"{prefix}_*.png"):
        digits = path.stem.removeprefix(f"{prefix}_")
        if digits.isascii() and digits.isdigit() and path.is_file():
            found.append((int(digits), path))
    return max(found) if found else None


def _finite(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


# ----------------------------------------------------------------------------------------------- rendering


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def render_page(runs: list[RunView], title: str, warnings: list[str], now: datetime) -> str:
    sections = [
        f"<header><h1>{esc(title)}</h1>\n<p class=\"muted\">{len(runs)} run{'s' if len(runs) != 1 else ''}, "
        f"generated {esc(now.strftime('%Y-%m-%d %H:%M %Z').strip())} by {GENERATOR}</p></header>",
        "".join(f'<p class="warning" data-warning="">warning: {esc(w)}</p>\n' for w in warnings),
        _section("Summary", "summary", f'<div class="wide">{_summary(runs)}</div>'),
        _row("Samples", "samples", runs, _samples_cell),
        _row("Reconstructions", "reconstructions", runs, _reconstructions_cell),
        _row("Attribute edits", "edit", runs, _edit_cell, lambda r: r.edit is not None or r.edit_grid is not None),
        _row("Attribute similarity", "similarity", runs, _similarity_cell, lambda r: r.similarity is not None),
        _row("Unsupervised pretraining", "pretraining", runs, _pretraining_cell, lambda r: r.pretraining is not None),
    ]
    style = CSS.replace("COLUMNS", str(len(runs)))
    csp = (f"default-src 'none'; img-src data:; style-src '{_sha256(style)}'; script-src '{_sha256(SCRIPT)}'; "
           "base-uri 'none'; form-action 'none'")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="generator" content="{GENERATOR}">\n'
            f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{esc(title)}</title>\n<style>{style}</style>\n</head>\n<body>\n"
            + "\n".join(s for s in sections if s)
            + f"\n<script>{SCRIPT}</script>\n</body>\n</html>\n")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def _section(heading: str, key: str, content: str) -> str:
    return f'<section data-section="{key}">\n<h2>{esc(heading)}</h2>\n{content}\n</section>'


def _row(heading: str, key: str, runs: list[RunView], cell: Callable[[int, RunView], str],
         present: Callable[[RunView], bool] | None = None) -> str:
    """A figure row: one column per run. A result no run has is one muted line instead."""
    if present is not None and not any(present(r) for r in runs):
        return _section(heading, key, '<p class="muted">not run for any of these runs</p>')
    cells = "\n".join(f'<div class="cell" data-run="{i}">\n<h3>{esc(r.name)}</h3>\n{cell(i, r)}\n</div>'
                      for i, r in enumerate(runs))
    return _section(heading, key, f'<div class="cols">\n{cells}\n</div>')


def _summary(runs: list[RunView]) -> str:
    head = "".join(f'<th data-run="{i}" title="{esc(r.path)}">{esc(r.name)}</th>' for i, r in enumerate(runs))
    rows = [f"<tr><th></th>{head}</tr>"]
    for label, values in (("model kind", [r.kind for r in runs]),
                          ("condition", [r.setting("model", "condition") for r in runs]),
                          ("gamma", [r.setting("objective", "gamma") for r in runs]),
                          ("steps", [_steps(r) for r in runs]),
                          ("metrics", [r.metrics_source or "no metrics" for r in runs])):
        cells = "".join(f'<td data-run="{i}">{esc("—" if v is None else v)}</td>' for i, v in enumerate(values))
        rows.append(f'<tr data-setting="{label}"><th>{label}</th>{cells}</tr>')
    for name in METRICS:
        values = [r.metrics.get(name) for r in runs]
        best = best_indices(values, better(name))
        cells = "".join(f'<td data-run="{i}">{_bold(_number(v), i in best)}</td>' for i, v in enumerate(values))
        rows.append(f'<tr data-metric="{name}"><th>{name} <small>({better_note(name)})</small></th>{cells}</tr>')
    note = '<p class="muted">bold: the best of the runs per metric (only where two or more have it)</p>'
    return "<table>\n" + "\n".join(rows) + "\n</table>\n" + note


def best_indices(values: Sequence[float | None], direction: str) -> set[int]:
    """The positions of the best values (ties: all of them), ``direction`` one of "lower", "higher" or "one"
    (closest to 1); none unless two or more values are known: one run is not the best of anything."""
    known = {i: v for i, v in enumerate(values) if v is not None}
    if len(known) < 2:
        return set()
    badness = {i: abs(v - 1) if direction == "one" else v if direction == "lower" else -v for i, v in known.items()}
    top = min(badness.values())
    return {i for i, b in badness.items() if b == top}


def _steps(run: RunView) -> str:
    done = [checkpoint_step(p) for p in find_checkpoints(run.path)]
    target = run.setting("train", "steps")
    if not done:
        return f"no checkpoint (of {target})" if target is not None else "no checkpoint"
    return f"{done[-1]}" if target in (None, done[-1]) else f"{done[-1]} of {target}"


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _bold(text: str, bold: bool) -> str:
    return f"<strong>{text}</strong>" if bold else text


def _image(path: Path, figure: str, run_index: int, alt: str) -> str:
    """An <img> with the PNG embedded, or a note saying why it is not."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            return _muted(f"{path.name}: {size / 2**20:.0f} MB, larger than {MAX_FILE_BYTES >> 20} MB; not embedded")
        data = path.read_bytes()
    except OSError as err:
        return _muted(f"{path.name}: not readable ({err.strerror or type(err).__name__})")
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return _muted(f"{path.name}: not a PNG file; not embedded")
    width, height = struct.unpack(">II", data[16:24])
    src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (f'<img id="run{run_index}-{figure}" data-figure="{figure}" data-run="{run_index}" alt="{esc(alt)}" '
            f'width="{2 * width}" height="{2 * height}" src="{src}">')


def _muted(text: str) -> str:
    return f'<p class="muted">{esc(text)}</p>'


def _figure(path: Path, figure: str, i: int, run: RunView, what: str, step: Any) -> str:
    caption = f"{run.name} · {run.kind} · step {step}"
    return (f"<figure>{_image(path, figure, i, f'{what} of {run.name} ({run.kind}, step {step})')}"
            f"<figcaption>{esc(caption)}</figcaption></figure>")


def _samples_cell(i: int, run: RunView) -> str:
    if run.samples is None:
        return _muted("no sample grid yet")
    step, path = run.samples
    return _figure(path, "samples", i, run, "samples", step)


def _reconstructions_cell(i: int, run: RunView) -> str:
    if run.reconstructions is None:
        return _muted("no encoder" if run.kind == "gan" else "no reconstruction grid yet")
    step, path = run.reconstructions
    return _figure(path, "reconstructions", i, run, "reconstructions (rows: originals, reconstructions)", step)


def _edit_cell(i: int, run: RunView) -> str:
    edit = run.edit or {}
    parts = []
    if run.edit_grid is not None:
        parts.append(_figure(run.edit_grid, "edit", i, run, "attribute edits", edit.get("step", "?")))
    if run.edit is None:
        parts.append(_muted("edit: not run" if run.edit_grid is None else "no readable edit.json beside it"))
        return "\n".join(parts)
    rows = run.edit["results"]
    scales = list(dict.fromkeys(r["scale"] for r in rows))
    cell = {(r["attribute"], r["scale"]): r for r in rows}
    head = "".join(f"<th>{esc(f'{s:+g}')}</th>" for s in scales)
    body = []
    for attribute in dict.fromkeys(r["attribute"] for r in rows):
        tds = "".join(f"<td>{_edit_fraction(cell.get((attribute, s)))}</td>" for s in scales)
        body.append(f"<tr><th>{esc(attribute)}</th>{tds}</tr>")
    caption = (f"fraction of candidates the edit changed; {edit.get('num_images', '?')} images "
               f"({edit.get('images', '?')}), attribute vectors from {edit.get('vector_images', '?')} images")
    parts.append(_table("edit", caption, f"<tr><th>attribute \\ scale</th>{head}</tr>", body))
    return "\n".join(parts)


def _edit_fraction(row: dict[str, Any] | None) -> str:
    if row is None:
        return "—"
    fraction = _finite(row["fraction"])
    shown = "n/a" if fraction is None else f"{100 * fraction:.0f}%"
    if row["candidates"] is None:
        return shown
    baseline, own = _finite(row.get("baseline")), _finite(row.get("vector_fraction"))
    without = "" if baseline is None else f"; {100 * baseline:.0f}% by reconstruction alone"
    without += "" if own is None else f"; vector alone {100 * own:.0f}%"
    return f"{shown}<br><small>{row['changed']}/{row['candidates']}{without}</small>"


def _similarity_cell(i: int, run: RunView) -> str:
    if run.similarity is None:
        return _muted("similarity: not run")
    rows = run.similarity["rows"]
    models = [j for j, r in enumerate(rows) if r.get("model_kind") is not None]  # the real images are the reference
    best = {key: {models[k] for k in best_indices([_finite(rows[j][key]) for j in models], direction)}
            for key, direction in (("cosine", "higher"), ("mse", "lower"))}
    body = []
    for j, r in enumerate(rows):
        who = esc(r["name"]) + (f"<br><small>{esc(r['model_kind'])}, step {esc(r.get('step'))}</small>"
                                if r.get("model_kind") is not None else "")
        cells = "".join(f"<td>{_bold(_number(_finite(r[key])), j in best[key])}</td>" for key in ("cosine", "mse"))
        body.append(f"<tr><th>{who}</th>{cells}</tr>")
    data = run.similarity
    caption = (f"requested vs. predicted attributes, {data.get('num', '?')} {data.get('split', '?')} images, "
               f"{len(data.get('attributes') or [])} attributes")
    head = "<tr><th></th><th>cosine similarity <small>(higher is better)</small></th>" \
           "<th>mean squared error <small>(lower is better)</small></th></tr>"
    return _table("similarity", caption, head, body)


def _pretraining_cell(i: int, run: RunView) -> str:
    if run.pretraining is None:
        return _muted("pretraining: not run")
    data = run.pretraining
    rows = data["rows"]
    fractions = sorted({r["fraction"] for r in rows})
    # The label count of a column, as most of its rows have it (a baseline row may count differently).
    labels = {f: Counter(r["labels"] for r in rows if r["fraction"] == f).most_common(1)[0][0] for f in fractions}
    cell = {(r["init"], r["fraction"]): _finite(r["accuracy"]) for r in rows}
    head = "".join(f"<th>{esc(f'{100 * f:g}%')} <small>({labels[f]} labels)</small></th>" for f in fractions)
    body = []
    for init in dict.fromkeys(r["init"] for r in rows):
        tds = "".join(f"<td>{_percent(cell[init, f]) if (init, f) in cell else '—'}</td>" for f in fractions)
        body.append(f"<tr><th>{esc(init)}</th>{tds}</tr>")
    caption = (f"{data.get('metric', 'accuracy')} on {data.get('test_images', '?')} test images; "
               f"discriminator from step {data.get('step', '?')}")
    return _table("pretraining", caption, f"<tr><th>init \\ labels</th>{head}</tr>", body)


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _table(key: str, caption: str, head: str, body: list[str]) -> str:
    return (f'<table data-result="{key}">\n<caption>{esc(caption)}</caption>\n{head}\n' + "\n".join(body)
            + "\n</table>")


CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5rem; color: #222; background: #fff; }
h1 { margin: 0 0 .2rem; } h2 { margin: 2rem 0 .6rem; border-bottom: 1px solid #ccc; }
h3 { margin: 0 0 .4rem; font-size: 1rem; overflow-wrap: anywhere; }
.muted, small, figcaption, caption { color: #666; }
.warning { color: #8a4b00; background: #fff4e0; padding: .2rem .5rem; margin: .2rem 0; }
.wide { overflow-x: auto; }
.cols { display: grid; grid-template-columns: repeat(COLUMNS, minmax(240px, 1fr)); gap: 1.2rem;
        overflow-x: auto; }
.cols > * { min-width: 0; overflow-x: auto; }  /* a wide table scrolls inside its run's column */
figure { margin: 0; }
img { image-rendering: pixelated; max-width: 100%; height: auto; display: block; background: #eee; }
table { border-collapse: collapse; margin: .4rem 0; }
caption { caption-side: bottom; text-align: left; font-size: .85em; padding-top: .2rem; }
th, td { border: 1px solid #ddd; padding: .2rem .5rem; text-align: right; vertical-align: top; }
th { background: #f6f6f6; text-align: left; font-weight: 600; }
td small { display: block; }
"""

# Tells a test (or a curious user's console) how many images the browser decoded.
SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  document.body.dataset.imagesTotal = images.length;
  document.body.dataset.imagesLoaded = images.filter(function (img) { return img.naturalWidth > 0; }).length;
});
"""
