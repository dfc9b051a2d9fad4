"""A trained model on disk: the checkpoint format, finding checkpoints, and loading them safely.

A checkpoint is a directory ``checkpoint_<step>`` holding ``state.pt`` (networks, optimisers, step,
config, data position, metrics) and a readable ``config.yaml``. ``state.pt`` holds tensors and plain
Python values only and is read with ``torch.load(weights_only=True)``: a checkpoint comes from wherever
a user downloaded it, and unpickling anything else could run code.

Training writes checkpoints (:mod:`vaegan_dist.train.checkpoint`); everything that uses a trained model
(sampling, evaluation, editing) reads them here, without importing the training code.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from vaegan_dist.config import Config, ConfigError, config_from_dict, validate
from vaegan_dist.errors import CheckpointError
from vaegan_dist.model.vaegan import VAEGAN, build_model

FORMAT = "vaegan-dist-checkpoint/1"
STATE_FILE = "state.pt"
RUN_MARKER = ".vaegan-dist-run"  # written into every run directory we create: what makes it ours


def checkpoint_name(step: int) -> str:
    return f"checkpoint_{step:08d}"


def checkpoint_step(path: str | Path) -> int:
    """The step in a ``checkpoint_<step>`` directory name, or -1 for any other name."""
    name = Path(str(path).rstrip("/")).name.removeprefix("checkpoint_")
    return int(name) if name.isdigit() else -1


def is_complete(checkpoint_dir: Path) -> bool:
    """state.pt is present and whole. torch.save writes a zip archive whose directory sits at the end, so a
    file cut short (a copy interrupted by a crash) fails this check without reading the tensors."""
    state = Path(checkpoint_dir) / STATE_FILE
    return state.is_file() and zipfile.is_zipfile(state)


def find_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    found = [p for p in Path(run_dir).glob("checkpoint_*") if checkpoint_step(p) >= 0 and is_complete(p)]
    return sorted(found, key=checkpoint_step)


def incomplete_checkpoints(run_dir: Path) -> list[Path]:
    """checkpoint_* directories newer than the newest complete one (a copy cut short): never resumed from."""
    complete = find_checkpoints(run_dir)
    newest = checkpoint_step(complete[-1]) if complete else -1
    return sorted((p for p in Path(run_dir).glob("checkpoint_*") if checkpoint_step(p) > newest and not is_complete(p)),
                  key=checkpoint_step)


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


def load_tensors(file: str | Path, map_location: str | torch.device = "cpu", what: str = "checkpoint",
                 mmap: bool = False) -> Any:
    """``torch.load(weights_only=True)`` with one-line errors: a file that asks to unpickle anything beyond
    tensors and plain values is refused (nothing in it has run), an unreadable one named as such.
    ``mmap``: tensors are mapped from the file, not read (for a caller that wants the plain values only)."""
    try:
        with warnings.catch_warnings():  # a raw pickle's "Detected pickle protocol": the error below says it all
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(file, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as err:  # weights_only refused something; nothing in the file has run
        refused = next((line.strip() for line in str(err).splitlines() if "GLOBAL" in line), None)
        if refused is not None:
            raise CheckpointError(f"{file}: refused to load: it holds more than tensors and plain values "
                                  f"({refused[:200]})") from None
        raise CheckpointError(f"{file}: not a readable {what} (not a file written by torch.save)") from None
    except Exception as err:  # truncated zip, a directory, unreadable
        first = str(err).splitlines()[0] if str(err) else ""
        raise CheckpointError(f"{file}: not a readable {what} ({type(err).__name__}: {first[:200]})") from None


def load_state(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """The checkpoint's contents; only tensors and plain values are ever unpickled. ``mmap``: the tensors
    are mapped from the file and read only if used (the driver reading a checkpoint's attribute names)."""
    file = resolve_checkpoint(path)
    state = load_tensors(file, map_location, mmap=mmap)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{file}: not a vaegan-dist checkpoint (format {found!r}, expected {FORMAT!r})")
    for key in ("step", "model", "config"):
        if key not in state:
            raise CheckpointError(f"{file}: checkpoint has no {key!r} entry")
    return state


def saved_evaluation(path: str | Path) -> tuple[int, dict[str, float]]:
    """The checkpoint's step and its last evaluation: the ``eval/*`` metrics without the prefix ({} when it has
    none; a value that is not a number is left out). The tensors are mapped, not read: a few numbers from a
    file of megabytes. The one reader of a checkpoint's metrics (the CLI's closing lines, the report, serve)."""
    state = load_state(path, mmap=True)
    saved = state.get("metrics")
    metrics = {k.removeprefix("eval/"): float(v) for k, v in (saved.items() if isinstance(saved, dict) else ())
               if isinstance(k, str) and k.startswith("eval/") and isinstance(v, (int, float))
               and not isinstance(v, bool)}
    step = state["step"]
    if not isinstance(step, int) or isinstance(step, bool):
        raise CheckpointError(f"{resolve_checkpoint(path)}: its 'step' entry is not an integer")
    return step, metrics


def saved_attributes(state: dict[str, Any], where: str) -> tuple[str, ...]:
    """The attribute names a conditioned model's y vectors follow (empty for an unconditioned model)."""
    names = state.get("attributes", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{where}: its 'attributes' entry is not a list of names")
    return tuple(names)


def load_model(path: str | Path, device: str | torch.device = "cpu",
               averaged: bool = True) -> tuple[VAEGAN, Config, int]:
    """A trained model in eval mode, its config and its step: what ``sample`` and users' scripts need.

    A run trained with ``optim.ema_halflife_kimg`` saved the average of its encoder's and decoder's weights
    beside the live ones; those are the model's weights here unless ``averaged=False`` (the discriminator is
    always the live one: it is not averaged)."""
    state = load_state(path, map_location=device)
    where = str(resolve_checkpoint(path))
    try:
        cfg = validate(config_from_dict(state["config"], source=where))
        model = build_model(cfg.model, cfg.data.image_size, saved_attributes(state, where))
        model.load_state_dict(state["model"])
        average = state.get("ema") if averaged else None
        if average is not None:
            if not isinstance(average, dict) or not set(average) <= {"encoder", "decoder"}:
                raise ValueError("its 'ema' entry is not the encoder's and decoder's weights")
            for name, weights in average.items():
                getattr(model, name).load_state_dict(weights)
    except (ConfigError, RuntimeError, TypeError, AttributeError, ValueError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"{where}: its weights do not fit its config ({first[:200]})") from None
    return model.to(device).eval(), cfg, int(state["step"])
