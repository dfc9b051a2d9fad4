"""Checkpoints: everything needed to resume a run, or to use the trained model.

A checkpoint is a directory ``checkpoint_<step>`` holding ``state.pt`` (networks, optimisers, step,
config, data position) and a readable ``config.yaml``. ``state.pt`` is written under a temporary name
and renamed, so a reader never sees half a file; Ray (or the local session) then moves the whole
directory into the run directory.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from vaegan_dist.config import Config, config_from_dict, config_to_dict, save_config, validate
from vaegan_dist.model import VAEGAN, build_model

FORMAT = "vaegan-dist-checkpoint/1"
STATE_FILE = "state.pt"


def checkpoint_name(step: int) -> str:
    return f"checkpoint_{step:08d}"


def save_checkpoint(directory: Path, *, model: VAEGAN, optimizers: dict[str, torch.optim.Optimizer], step: int,
                    cfg: Config, data_position: dict[str, int], metrics: dict[str, float]) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT,
        "step": step,
        "model": model.state_dict(),
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "config": config_to_dict(cfg),
        "data_position": data_position,
        "metrics": metrics,
    }
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{STATE_FILE}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, directory / STATE_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    save_config(cfg, directory / "config.yaml")
    return directory


def is_complete(checkpoint_dir: Path) -> bool:
    """state.pt is present and whole. torch.save writes a zip archive whose directory sits at the end, so a
    file cut short (a copy interrupted by a crash) fails this check without reading the tensors."""
    state = Path(checkpoint_dir) / STATE_FILE
    return state.is_file() and zipfile.is_zipfile(state)


def find_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    found = [p for p in Path(run_dir).glob("checkpoint_*") if is_complete(p)]
    return sorted(found, key=lambda p: p.name)


def resolve_checkpoint(path: str | Path) -> Path:
    """A state.pt file, a checkpoint directory, or a run directory (its latest checkpoint) -> state.pt."""
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if (path / STATE_FILE).is_file():
        return path / STATE_FILE
    if path.is_dir():
        found = find_checkpoints(path)
        if found:
            return found[-1] / STATE_FILE
        raise FileNotFoundError(f"{path}: no checkpoint_* directory with a {STATE_FILE} in it")
    raise FileNotFoundError(f"{path}: no such checkpoint, checkpoint directory or run directory")


def load_state(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    file = resolve_checkpoint(path)
    try:
        state = torch.load(file, map_location=map_location, weights_only=False)
    except Exception as err:  # truncated or foreign file
        raise ValueError(f"{file}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{file}: not a vaegan-dist checkpoint (format {state.get('format') if isinstance(state, dict) else None!r})")
    return state


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[VAEGAN, Config, int]:
    """A trained model in eval mode, its config and its step: what ``sample`` and users' scripts need."""
    state = load_state(path, map_location=device)
    cfg = validate(config_from_dict(state["config"], source=str(resolve_checkpoint(path))))
    model = build_model(cfg.model, cfg.data.image_size)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), cfg, int(state["step"])
