"""A PBT trial that starts from a checkpoint Tune hands it: its run directory takes that checkpoint.

Tune restarts an exploiting trial with its donor's checkpoint (Tune's copy of it, in the donor's trial
directory), and a trial that Tune paused or that a resumed sweep restarts with its own. The trial's Train run
resumes from its run directory, so the run directory must hold the checkpoint Tune chose:

- the donor's (its saved config names another run): the trial's own checkpoints go (its lineage ends here),
  Train forgets them (item 9 of :mod:`vaegan_dist.ray_compat`) and the donor's is copied in under its step;
- its own, newer than the run directory's newest (a sweep killed while the run directory was being rewritten):
  the same, from Tune's copy;
- its own and no newer: nothing to do, the run resumes from its newest.

The copy is staged under a hidden name, then the old checkpoints go, then it is renamed into place. A kill in
between leaves a run directory without the old checkpoints (and a staged copy, removed by the next start): Tune's
saved state already hands the trial the same checkpoint on the next start, which adopts it again.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from vaegan_dist.atomic import remove_staged
from vaegan_dist.errors import TrainingError
from vaegan_dist.model.store import (
    checkpoint_name,
    checkpoint_step,
    find_checkpoints,
    is_complete,
    load_state,
)
from vaegan_dist.ray_compat import forget_train_checkpoints


@dataclass(frozen=True)
class Adopted:
    step: int
    run: str  # the run (trial id) whose checkpoint it is
    token: str | None  # the start of that run that wrote it (vaegan_tune/schedule.py); None before PBT wrote one


def saved_run(checkpoint_dir: Path) -> Adopted:
    """The step and the run name a checkpoint was written by (its state.pt's own config)."""
    if not is_complete(checkpoint_dir):
        raise TrainingError(f"{checkpoint_dir}: the checkpoint Tune handed this trial is incomplete (no readable "
                            "state.pt)")
    state = load_state(checkpoint_dir, mmap=True)
    step, config = state["step"], state["config"]
    train = config.get("train") if isinstance(config, dict) else None
    name = train.get("name") if isinstance(train, dict) else None
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise TrainingError(f"{checkpoint_dir}: its step is {step!r}, not a step number"[:300])
    if not isinstance(name, str) or not name:
        raise TrainingError(f"{checkpoint_dir}: its config names no run (train.name); the checkpoint Tune handed "
                            "this trial does not say which run wrote it")
    token = state.get("start_token")
    return Adopted(step, name, token if isinstance(token, str) else None)


def _ours_to_replace(run_dir: Path) -> list[Path]:
    """The run directory's checkpoint entries, which adoption removes: each must be a directory of ours, never a
    link or a file someone put there (removing through a link would reach outside the run)."""
    entries = [p for p in run_dir.glob("checkpoint_*") if checkpoint_step(p) >= 0]
    foreign = [p for p in entries if p.is_symlink() or not p.is_dir()]
    if foreign:
        raise TrainingError(f"{foreign[0]}: not a checkpoint directory of this run (a link or a file); move it away "
                            "and rerun the sweep with --resume")
    return entries


def adopt_checkpoint(run_dir: Path, trial_id: str, given: Path) -> Adopted | None:
    """Make ``run_dir`` resume from ``given`` (the checkpoint Tune restarted trial ``trial_id`` with) when it is
    another run's or newer than the run's own; returns what was adopted, None when the run resumes as it is.
    Everything that can refuse is checked before anything is removed."""
    remove_staged(run_dir, ".adopting-*.tmp")  # staged by a start that was killed
    source = saved_run(given)
    replaced = _ours_to_replace(run_dir)
    own = find_checkpoints(run_dir)
    if source.run == trial_id and own and checkpoint_step(own[-1]) >= source.step:
        return None
    staging = run_dir / f".adopting-{checkpoint_name(source.step)}.tmp"
    try:
        shutil.copytree(given, staging)
        forget_train_checkpoints(run_dir)
        for old in replaced:  # complete or not: the trial's lineage ends here
            shutil.rmtree(old)
        os.replace(staging, run_dir / checkpoint_name(source.step))
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise TrainingError(f"{run_dir}: the checkpoint of run {source.run} at step {source.step} could not be "
                            f"copied in ({err.strerror or err}); rerun the sweep with --resume") from None
    return source
