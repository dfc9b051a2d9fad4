"""A PBT trial's schedule: the hyperparameters it ran with, from which step, and whose checkpoint it started from.

Every start of a PBT trial (its first, each exploit, each resume after a pause or a kill) appends a segment to
``runs/<trial id>/schedule.jsonl``: the step and values it started with, and the checkpoint it started from, named
by the trial that wrote it and that start's token, which every checkpoint carries (``start_token``). Following those
back from the trial's last segment gives its *lineage*, across the trials it copied, exactly: the segments that
made its weights, which is what a user replays to rerun the winner's schedule from scratch. Each hop goes to a
segment that started at an earlier step, so the walk ends.
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
    token: str  # this start's (what the checkpoints it writes carry)
    copied_from: str | None = None  # the other trial whose checkpoint it started from (None: its own, or none)
    from_token: str | None = None  # the start that wrote that checkpoint (None: step 0)


def read_schedule(run_dir: Path) -> list[Segment]:
    file = Path(run_dir) / SCHEDULE_FILE
    if not file.is_file():
        return []
    try:
        lines = file.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise TrainingError(f"{file}: unreadable ({getattr(err, 'strerror', None) or type(err).__name__})") from None
    return [_segment(file, number, line) for number, line in enumerate(lines, 1)]


def _segment(file: Path, number: int, line: str) -> Segment:
    """One line, typed strictly: the file is in a sweep directory anyone with access to the storage can write."""
    where = f"{file}:{number}"
    try:
        raw = json.loads(line)
    except (ValueError, RecursionError):
        raise TrainingError(f"{where}: not a schedule segment (not JSON)") from None
    if not isinstance(raw, dict) or not {"step", "params", "token"} <= raw.keys():
        raise TrainingError(f"{where}: not a schedule segment (needs step, params and token)")
    step, params, token = raw["step"], raw["params"], raw["token"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise TrainingError(f"{where}: step must be a step number, got {step!r}"[:300])
    if not isinstance(params, dict) or not all(isinstance(k, str) for k in params):
        raise TrainingError(f"{where}: params must map config keys to values")
    optional = (raw.get("copied_from"), raw.get("from_token"))
    if not isinstance(token, str) or not all(v is None or isinstance(v, str) for v in optional):
        raise TrainingError(f"{where}: token, copied_from and from_token must be strings")
    return Segment(step, params, token, *optional)


def record_segment(run_dir: Path, segment: Segment) -> None:
    """Append ``segment`` (the file rewritten whole, atomically: a kill leaves the old one or the new one)."""
    atomic_write_text(Path(run_dir) / SCHEDULE_FILE, "".join(json.dumps(asdict(s), sort_keys=True) + "\n"
                                                            for s in [*read_schedule(run_dir), segment]))


def lineage(runs_dir: Path, trial_id: str) -> list[tuple[str, Segment]]:
    """The segments, across trials, that made ``trial_id``'s newest weights, oldest first, each with its trial."""
    segments = read_schedule(runs_dir / trial_id)
    if not segments:
        raise TrainingError(f"{runs_dir / trial_id / SCHEDULE_FILE}: no schedule; trial {trial_id}'s cannot be traced")
    trial, segment = trial_id, segments[-1]
    chain, seen = [(trial, segment)], {segment.token}
    while segment.step > 0:
        source = segment.copied_from or trial
        found = [s for s in read_schedule(runs_dir / source) if s.token == segment.from_token]
        if segment.from_token is None or not found or found[0].token in seen or found[0].step >= segment.step:
            raise TrainingError(f"{runs_dir / source / SCHEDULE_FILE}: no segment wrote the checkpoint of step "
                                f"{segment.step} that trial {trial} started from; the schedule of trial {trial_id} "
                                "cannot be traced")
        trial, segment = source, found[0]
        chain.append((trial, segment))
        seen.add(segment.token)
    return chain[::-1]


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
    the step where the values next change, and the next resumes it with the new values (a resumed run takes
    changed hyperparameters, vaegan_dist/train/resume.py)."""
    from vaegan_tune.trial import trial_overrides

    merged = [s for i, (_, s) in enumerate(chain) if i == 0 or s.params != chain[i - 1][1].params]  # a resume
    commands = []
    for i, segment in enumerate(merged):
        until = merged[i + 1].step if i + 1 < len(merged) else end_step
        if until <= segment.step:
            continue
        args = ["vaegan-dist", "train", *train_args, *trial_overrides(segment.params), f"train.name={name}",
                f"train.steps={until}"]
        commands.append(" ".join(shlex.quote(a) for a in args))
    return commands
