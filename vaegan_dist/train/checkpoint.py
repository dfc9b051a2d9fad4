"""Writing checkpoints: everything needed to resume a run, or to use the trained model.

The format, and reading it back, live in :mod:`vaegan_dist.model.store`. Only tensors and plain Python
values are saved, so that the file loads with ``torch.load(weights_only=True)``. ``state.pt`` is written
under a temporary name and renamed (:func:`vaegan_dist.atomic.atomic_file`), so a reader never sees half
a file; Ray (or the local session) then moves the whole directory into the run directory.
"""

from __future__ import annotations

from pathlib import Path

import torch

from vaegan_dist.atomic import atomic_file
from vaegan_dist.config import Config, config_to_dict, save_config
from vaegan_dist.model import VAEGAN
from vaegan_dist.model.store import FORMAT, STATE_FILE
from vaegan_dist.train.ema import WeightAverage


def save_checkpoint(directory: Path, *, model: VAEGAN, optimizers: dict[str, torch.optim.Optimizer], step: int,
                    cfg: Config, data_position: dict[str, int], metrics: dict[str, float],
                    ema: WeightAverage | None = None, start_token: str = "") -> Path:
    """``ema``: the run's weight average; its encoder and decoder are saved beside the live weights, and
    ``load_model`` uses them. ``start_token``: the PBT trial start that wrote it (vaegan_tune/schedule.py)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT,
        "step": int(step),
        "model": model.state_dict(),
        "attributes": list(model.attributes),  # what y means, for a conditioned model; [] otherwise
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "config": config_to_dict(cfg),
        "data_position": {k: int(v) for k, v in data_position.items()},
        "metrics": {k: float(v) for k, v in metrics.items()},
    }
    if ema is not None:
        state["ema"] = ema.state_dict()
    if start_token:
        state["start_token"] = start_token
    try:
        with atomic_file(directory / STATE_FILE, durable=True) as f:
            torch.save(state, f)
    except RuntimeError as err:  # torch's zip writer reports a failed write (disk full) as a RuntimeError
        raise _os_error_behind(err) or err from None
    save_config(cfg, directory / "config.yaml")
    return directory


def _os_error_behind(err: BaseException) -> OSError | None:
    """The OSError a RuntimeError was raised while handling, if any (its ``__context__`` chain)."""
    seen = err.__context__
    while seen is not None and not isinstance(seen, OSError):
        seen = seen.__context__
    return seen
