"""Rendering the report: the runs as read (:mod:`.reading`) become plain rows and cells here, and the Jinja2
template ``templates/report.html.j2`` turns them into the page. Every string reaches the HTML through the
template with autoescaping on, so that no value from a run directory can add markup, whoever edits the page
next. The only text marked safe is our own stylesheet, whose hash the Content-Security-Policy names."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from markupsafe import Markup

from vaegan_dist.evaluate.model_metrics import METRICS, better, better_note
from vaegan_dist.evaluate.records import EditRow, ReconstructionRow
from vaegan_dist.evaluate.report.reading import Picture, RunView
from vaegan_dist.pages import csp_hash, environment, source

GENERATOR = "vaegan-dist report"  # in a <meta name="generator">
_PACKAGE = "vaegan_dist.evaluate.report"  # its templates folder


@dataclass
class Cell:
    """One table cell: its text, a muted second part (beneath it, or in parentheses in a head row), bold for
    the best of a row."""

    text: str
    small: str = ""
    bold: bool = False


@dataclass
class Table:
    key: str  # data-result, for tests and styles
    caption: str
    head: list[Cell]
    rows: list[tuple[Cell, list[Cell]]]  # (row heading, cells)


@dataclass
class Block:
    """One thing in a run's column: a figure, a muted note, or a table."""

    kind: str  # "figure", "note" or "table"
    text: str = ""  # the note, or the figure's caption
    picture: Picture | None = None
    figure: str = ""  # the figure's name: samples, reconstructions, edit
    alt: str = ""
    table: Table | None = None


@dataclass
class Section:
    key: str
    heading: str
    columns: list[list[Block]] = field(default_factory=list)  # one per run; empty: no run has this result


@dataclass
class SummaryRow:
    label: str
    note: str  # which way is better, for a metric ("" for a setting)
    cells: list[Cell]
    metric: bool


def render_page(runs: list[RunView], title: str, warnings: list[str], now: datetime) -> str:
    style = _stylesheet()
    csp = f"default-src 'none'; img-src data:; style-src {csp_hash(style)}; base-uri 'none'; form-action 'none'"
    return environment(_PACKAGE).get_template("report.html.j2").render(
        title=title, generator=GENERATOR, csp=csp, style=Markup(style), runs=runs, warnings=warnings,
        generated=now.strftime("%Y-%m-%d %H:%M %Z").strip(), summary=summary_rows(runs), sections=sections(runs))


@cache
def _stylesheet() -> str:
    return source(_PACKAGE, "report.css")


# ------------------------------------------------------------------------------------------------ summary


def summary_rows(runs: list[RunView]) -> list[SummaryRow]:
    rows = [SummaryRow(label, "", [Cell("—" if v is None else str(v)) for v in values], metric=False)
            for label, values in (("model kind", [r.kind for r in runs]),
                                  ("condition", [r.setting("model", "condition") for r in runs]),
                                  ("gamma", [r.setting("objective", "gamma") for r in runs]),
                                  ("steps", [r.steps for r in runs]),
                                  ("metrics", [r.metrics_source or "no metrics" for r in runs]))]
    for name in METRICS:
        values = [r.metrics.get(name) for r in runs]
        best = best_indices(values, better(name))
        cells = [Cell(_number(v), bold=i in best) for i, v in enumerate(values)]
        rows.append(SummaryRow(name, better_note(name), cells, metric=True))
    return rows


def best_indices(values: Sequence[float | None], direction: str) -> set[int]:
    """The positions of the best values (ties: all of them), ``direction`` one of "lower", "higher" or "one"
    (closest to 1); none unless two or more values are known: one run is not the best of anything."""
    known = {i: v for i, v in enumerate(values) if v is not None}
    if len(known) < 2:
        return set()
    badness = {i: abs(v - 1) if direction == "one" else v if direction == "lower" else -v for i, v in known.items()}
    top = min(badness.values())
    return {i for i, b in badness.items() if b == top}


# ------------------------------------------------------------------------------------ one column per run


def sections(runs: list[RunView]) -> list[Section]:
    def row(key: str, heading: str, cell: Callable[[RunView], list[Block]],
            present: Callable[[RunView], bool] | None = None) -> Section:
        if present is not None and not any(present(r) for r in runs):
            return Section(key, heading)
        return Section(key, heading, [cell(r) for r in runs])

    return [row("samples", "Samples", _samples),
            row("reconstructions", "Reconstructions", _reconstructions),
            row("edit", "Attribute edits", _edit, lambda r: r.edit is not None or r.edit_grid is not None),
            row("similarity", "Attribute similarity", _similarity, lambda r: r.similarity is not None),
            row("pretraining", "Unsupervised pretraining", _pretraining, lambda r: r.pretraining is not None)]


def _note(text: str) -> Block:
    return Block("note", text=text)


def _figure(picture: Picture, figure: str, run: RunView, what: str) -> Block:
    if picture.problem:
        return _note(picture.problem)
    return Block("figure", text=f"{run.name} · {run.kind} · step {picture.step}", picture=picture, figure=figure,
                 alt=f"{what} of {run.name} ({run.kind}, step {picture.step})")


def _samples(run: RunView) -> list[Block]:
    if run.samples is None:
        return [_note("no sample grid yet")]
    return [_figure(run.samples, "samples", run, "samples")]


def _reconstructions(run: RunView) -> list[Block]:
    if run.reconstructions is None:
        return [_note("no encoder" if run.kind == "gan" else "no reconstruction grid yet")]
    return [_figure(run.reconstructions, "reconstructions", run, "reconstructions (rows: originals, reconstructions)")]


def _edit(run: RunView) -> list[Block]:
    blocks = [] if run.edit_grid is None else [_figure(run.edit_grid, "edit", run, "attribute edits")]
    edit = run.edit
    if edit is None:
        return [*blocks, _note("edit: not run" if run.edit_grid is None else "no readable edit.json beside it")]
    scales = list(dict.fromkeys(r.scale for r in edit.results))
    by_cell = {(r.attribute, r.scale): r for r in edit.results}
    both_ways = {r.attribute: r for r in edit.reconstruction}  # absent from files written before it was recorded
    rows = [(Cell(attribute), [*(_edit_fraction(by_cell.get((attribute, s))) for s in scales),
                               *([_reconstruction_change(both_ways.get(attribute))] if both_ways else [])])
            for attribute in dict.fromkeys(r.attribute for r in edit.results)]
    caption = (f"fraction of candidates the edit changed; {edit.num_images} images ({edit.images}), "
               f"attribute vectors from {edit.vector_images} images")
    head = [Cell("attribute \\ scale"), *(Cell(f"{s:+g}") for s in scales),
            *([Cell("reconstruction", "read changed, both ways")] if both_ways else [])]
    return [*blocks, Block("table", table=Table("edit", caption, head, rows))]


def _edit_fraction(row: EditRow | None) -> Cell:
    if row is None:
        return Cell("—")
    shown = "n/a" if row.fraction is None else f"{100 * row.fraction:.0f}%"
    if row.candidates is None:
        return Cell(shown)
    small = f"{row.changed}/{row.candidates}"
    small += "" if row.baseline is None else f"; {100 * row.baseline:.0f}% by reconstruction alone"
    small += "" if row.vector_fraction is None else f"; vector alone {100 * row.vector_fraction:.0f}%"
    return Cell(shown, small)


def _reconstruction_change(row: ReconstructionRow | None) -> Cell:
    """The share of all edited images whose read the plain reconstruction changes: the floor under every edit."""
    if row is None or row.changed_fraction is None:
        return Cell("n/a")
    return Cell(f"{100 * row.changed_fraction:.0f}%",
                f"lost on {row.lost}/{row.having} that have it, gained on {row.gained}/{row.lacking} that lack it")


def _similarity(run: RunView) -> list[Block]:
    data = run.similarity
    if data is None:
        return [_note("similarity: not run")]
    models = [j for j, r in enumerate(data.rows) if r.model_kind is not None]  # the real images are the reference
    best = {key: {models[k] for k in best_indices([getattr(data.rows[j], key) for j in models], direction)}
            for key, direction in (("cosine", "higher"), ("mse", "lower"))}
    rows = [(Cell(r.name, "" if r.model_kind is None else f"{r.model_kind}, step {r.step}"),
             [Cell(_number(getattr(r, key)), bold=j in best[key]) for key in ("cosine", "mse")])
            for j, r in enumerate(data.rows)]
    caption = (f"requested vs. predicted attributes, {data.num} {data.split} images, "
               f"{len(data.attributes)} attributes")
    head = [Cell(""), Cell("cosine similarity", "higher is better"), Cell("mean squared error", "lower is better")]
    return [Block("table", table=Table("similarity", caption, head, rows))]


def _pretraining(run: RunView) -> list[Block]:
    data = run.pretraining
    if data is None:
        return [_note("pretraining: not run")]
    fractions = sorted({r.fraction for r in data.rows})
    # The label count of a column, as most of its rows have it (a baseline row may count differently).
    labels = {f: Counter(r.labels for r in data.rows if r.fraction == f).most_common(1)[0][0] for f in fractions}
    by_cell = {(r.init, r.fraction): r.accuracy for r in data.rows}
    rows = [(Cell(init), [Cell(_percent(by_cell[init, f]) if (init, f) in by_cell else "—") for f in fractions])
            for init in dict.fromkeys(r.init for r in data.rows)]
    head = [Cell("init \\ labels"), *(Cell(f"{100 * f:g}%", f"{labels[f]} labels") for f in fractions)]
    caption = f"{data.metric} on {data.test_images} test images; discriminator from step {data.step}"
    return [Block("table", table=Table("pretraining", caption, head, rows))]


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


