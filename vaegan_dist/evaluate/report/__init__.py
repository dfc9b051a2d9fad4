"""``vaegan-dist report``: training runs side by side on one HTML page, like the paper's figures.

    vaegan-dist report --runs ~/vaegan-dist/runs/vae-<date> ~/vaegan-dist/runs/vaegan-<date> --out report.html

Comparing runs means looking at their sample grids next to each other and at their numbers in one table;
TensorBoard shows one run's image at a time. The page is one self-contained file (images embedded as base64
``data:`` URIs, inline CSS, a Content-Security-Policy that allows no request and no script) so that it can be
mailed, attached to an issue, or opened offline long after the runs are gone. Per run it shows the config, the
newest sample and reconstruction grids, the metrics (``results/metrics.json``, else the newest checkpoint's
last evaluation during training), and the edit, similarity and pretraining results when they were run (the
files are described in :mod:`vaegan_dist.evaluate.results`).

Two steps: :mod:`.reading` reads each run directory once, trusting it no more than a downloaded file (a result
file that does not parse or fit its format is one warning line on the page, never a failed report), and
:mod:`.page` renders what was read through a Jinja2 template with autoescaping on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from vaegan_dist.atomic import atomic_write_text, check_output_file
from vaegan_dist.evaluate.report.page import render_page
from vaegan_dist.evaluate.report.reading import check_runs, read_run

DEFAULT_TITLE = "vaegan-dist report"
SUFFIXES = (".html", ".htm")


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
    return check_output_file(out, "--out", SUFFIXES, "a report is an HTML file")
