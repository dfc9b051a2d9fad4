"""Time-to-quality curves of sweeps and runs, read back from their TensorBoard events: for each sweep, its best
trial's fd and fd_recon against minutes since the sweep's first evaluation event, and the best fd of any trial so
far; for a single run, its own curve. What the "PBT against ASHA against the preset alone" comparison in
bench/RESULTS.md prints.

    python bench/sweep_curves.py --sweep pbt=/tmp/pbtbench/pbt --sweep asha=/tmp/pbtbench/asha \\
        --run preset=/tmp/pbtbench/preset --out bench/figures/pbt_asha_preset.png

Minutes count from ``--started NAME=UNIX_TIME`` (when its command started; the runner below writes them), or else
from its first event (the first trial's first evaluation for a sweep).
"""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

TAGS = ("eval/fd", "eval/fd_recon")


def curves(run_dir: Path) -> dict[str, list[tuple[float, int, float]]]:
    """(wall time, step, value) of each tag, by step as the events hold them now (purged on resume)."""
    logging.getLogger("tensorboard").setLevel(logging.ERROR)
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0}).Reload()
    have = events.Tags()["scalars"]
    return {tag: [(e.wall_time, e.step, e.value) for e in events.Scalars(tag)] for tag in TAGS if tag in have}


def best_trial(sweep: Path) -> str:
    with open(sweep / "results.csv", newline="") as f:
        return next(csv.DictReader(f))["trial_id"]


def describe(name: str, runs: dict[str, dict], best: str, start: float | None = None
             ) -> list[tuple[float, float, float, float]]:
    """Rows (minutes, step, best's fd, best's fd_recon) of the best run, and prints them with the best fd so far."""
    start = start or min(t for c in runs.values() for points in c.values() for t, _, _ in points)
    everything = sorted((t, v) for c in runs.values() for t, _, v in c.get("eval/fd", []))
    own = runs[best]
    recon = {s: v for _, s, v in own.get("eval/fd_recon", [])}
    rows = []
    print(f"\n{name}: best {best} ({len(runs)} run(s))\n  minutes   step      fd  fd_recon  best fd of any so far")
    for t, step, fd in own.get("eval/fd", []):
        so_far = min(v for w, v in everything if w <= t)
        rows.append(((t - start) / 60, step, fd, recon.get(step, float("nan"))))
        print(f"  {(t - start) / 60:7.2f} {step:6d} {fd:7.2f} {recon.get(step, float('nan')):9.2f} {so_far:10.2f}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sweep", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--run", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--started", action="append", default=[], metavar="NAME=UNIX_TIME")
    parser.add_argument("--out", default=None, help="a PNG of fd and fd_recon against minutes (optional)")
    args = parser.parse_args()
    started = {k: float(v) for k, _, v in (s.partition("=") for s in args.started)}
    plotted = {}
    for spec in args.sweep:
        name, _, where = spec.partition("=")
        sweep = Path(where)
        runs = {r.name: curves(r) for r in sorted((sweep / "runs").iterdir()) if (r / "tensorboard").is_dir()}
        plotted[name] = describe(name, runs, best_trial(sweep), started.get(name))
    for spec in args.run:
        name, _, where = spec.partition("=")
        run = Path(where)
        plotted[name] = describe(name, {run.name: curves(run)}, run.name, started.get(name))
    if args.out:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 4))
        for name, rows in plotted.items():
            for axis, column, label in ((axes[0], 2, "fd"), (axes[1], 3, "fd_recon")):
                axis.plot([r[0] for r in rows], [r[column] for r in rows], marker="o", label=name)
                axis.set(xlabel="minutes (2 CPU cores)", ylabel=label, yscale="log")
        axes[0].legend()
        fig.tight_layout()
        fig.savefig(args.out, dpi=100)
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
