"""A trial's schedule: the hyperparameters it ran with, from which step, and whose checkpoint it started from.

Each start of a trial whose values or weights changed (its first, and every PBT exploit) is a segment in
``runs/<trial id>/schedule.jsonl``; a segment at step s drops the segments at s or later that it replaces (a
trial Tune restarted from an earlier checkpoint). The weights a trial has at step u come from its last segment
before u, and, for a segment that copied another trial's checkpoint, from that trial's schedule before the copy:
the *lineage*, which is what a user replays to rerun the winner's schedule from scratch.
"""

from __future__ import annotations

import csv
import io
import json
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vaegan_dist.atomic import atomic_write_text
from vaegan_dist.errors import TrainingError

SCHEDULE_FILE = "schedule.jsonl"
SCHEDULES_CSV = "schedule.csv"


@dataclass(frozen=True)
class Segment:
    step: int  # the step it starts from
    params: dict[str, Any]
    copied_from: str | None = None  # the trial whose checkpoint of `step` it started from


def read_schedule(run_dir: Path) -> list[Segment]:
    file = Path(run_dir) / SCHEDULE_FILE
    if not file.is_file():
        return []
    segments = []
    for number, line in enumerate(file.read_text().splitlines(), 1):
        try:
            raw = json.loads(line)
            segment = Segment(int(raw["step"]), dict(raw["params"]), raw.get("copied_from"))
        except (ValueError, KeyError, TypeError):
            raise TrainingError(f"{file}:{number}: not a schedule segment") from None
        if segment.copied_from is not None and not isinstance(segment.copied_from, str):
            raise TrainingError(f"{file}:{number}: copied_from must be a trial id")
        segments.append(segment)
    return segments


def record_segment(run_dir: Path, segment: Segment) -> bool:
    """Append ``segment`` unless it continues the last one unchanged (a trial paused and resumed); returns whether
    it was written."""
    previous = read_schedule(run_dir)
    kept = [s for s in previous if s.step < segment.step]
    if previous and kept == previous and segment.copied_from is None and previous[-1].params == segment.params:
        return False
    atomic_write_text(Path(run_dir) / SCHEDULE_FILE,
                      "".join(json.dumps(asdict(s), sort_keys=True) + "\n" for s in [*kept, segment]))
    return True


def lineage(runs_dir: Path, trial_id: str, until: int | None = None) -> list[tuple[str, Segment]]:
    """The segments, across trials, that made ``trial_id``'s weights at step ``until`` (None: its newest), oldest
    first; each with the trial that ran it."""
    chain: list[tuple[str, Segment]] = []
    trial, limit = trial_id, until
    while True:  # ends: each copy is followed to a step strictly below the last (a segment's step < limit)
        segments = [s for s in read_schedule(runs_dir / trial) if limit is None or s.step < limit]
        if not segments:
            raise TrainingError(f"{runs_dir / trial / SCHEDULE_FILE}: no segment before step {limit}; the schedule "
                                f"of trial {trial_id} cannot be traced")
        for segment in reversed(segments):
            chain.append((trial, segment))
            if segment.copied_from is not None:
                trial, limit = segment.copied_from, segment.step
                break
            if segment.step == 0:
                return chain[::-1]
        else:
            raise TrainingError(f"{runs_dir / trial / SCHEDULE_FILE}: its first segment starts at step "
                                f"{segments[0].step} from no other trial; the schedule cannot be traced")


def schedules_csv(runs_dir: Path, trial_ids: list[str]) -> str:
    """Every trial's segments, one row each: what schedule.csv in the sweep directory holds."""
    rows = [(trial, s) for trial in trial_ids for s in read_schedule(runs_dir / trial)]
    keys = sorted({k for _, s in rows for k in s.params})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["trial_id", "from_step", "copied_from", *keys])
    for trial, s in rows:
        writer.writerow([trial, s.step, s.copied_from or "", *(s.params.get(k, "") for k in keys)])
    return out.getvalue()


def replay_commands(chain: list[tuple[str, Segment]], end_step: int, train_args: list[str], name: str) -> list[str]:
    """``vaegan-dist train`` commands that rerun ``chain`` from scratch as one run named ``name``: each trains to
    the next segment's step with its segment's values, and the next resumes it with the values changed (a resumed
    run takes changed hyperparameters, ../vaegan_dist/train/resume.py)."""
    from vaegan_tune.trial import trial_overrides

    commands = []
    for i, (_, segment) in enumerate(chain):
        until = chain[i + 1][1].step if i + 1 < len(chain) else end_step
        if until <= segment.step:
            continue
        args = ["vaegan-dist", "train", *train_args, *trial_overrides(segment.params), f"train.name={name}",
                f"train.steps={until}"]
        commands.append(" ".join(shlex.quote(a) for a in args))
    return commands
