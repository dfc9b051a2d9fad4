"""What rank 0 shows in TensorBoard, and the sample grids it also saves as PNG files beside it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from vaegan_dist.config import Config, config_to_flat_dict
from vaegan_dist.data.codec import write_grid


def flat_hparams(cfg: Config) -> dict[str, float | int | str | bool]:
    flat = config_to_flat_dict(cfg)
    return {"preset": cfg.preset, **{k: v for k, v in flat.items() if isinstance(v, (int, float, str, bool))}}


SCHEDULE_TAG = "schedule/"


def swept_values(cfg: Config, keys: tuple[str, ...]) -> dict[str, float]:
    """``schedule/<key>``: the numeric values of a sweep's keys (``keys``; none outside a sweep), one scalar each."""
    flat = config_to_flat_dict(cfg)
    return {f"{SCHEDULE_TAG}{k}": float(flat[k]) for k in keys
            if isinstance(flat.get(k), (int, float)) and not isinstance(flat.get(k), bool)}


class TensorBoardLogger:
    """Scalars, image grids and hparams under ``run_dir/tensorboard``; grids also under ``run_dir/samples``."""

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        self.log_dir = Path(run_dir) / "tensorboard"
        self.samples_dir = Path(run_dir) / "samples"
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        # purge_step drops events a crashed run logged after its last checkpoint, so curves do not fork: a run that
        # resumes at step s passes s + 1, as the events of step s itself came before its checkpoint (dropping them
        # lost the evaluation of every step a run was resumed at, and all but the last of a PBT trial's).
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step or None)

    def scalars(self, metrics: dict[str, float], step: int) -> None:
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)

    def grid(self, tag: str, images: torch.Tensor, step: int, nrow: int = 8) -> Path:
        """``images`` in [-1, 1], [N, 3, S, S]; returns the PNG written for users without TensorBoard."""
        path = self.samples_dir / f"{tag.replace('/', '_')}_{step:08d}.png"
        self.writer.add_image(tag, write_grid(images, path, nrow), step)
        return path

    def start_hparams(self, cfg: Config, metric_tags: list[str], keys: tuple[str, ...] = ()) -> None:
        """Declare this run a session of TensorBoard's HParams view: its hyperparameters (``keys``, or every
        config key) and the scalar tags it compares runs on. Written at the start, not at the end (what
        ``add_hparams`` does), so that a run stopped early by a Tune scheduler or killed still shows, with
        the newest values of its ``eval/*`` curves. The values come from the scalars in this same
        directory (``add_hparams`` would write them into a separate run)."""
        values = flat_hparams(cfg)
        if keys:
            values = {k: values[k] for k in keys if k in values}
        experiment, start, _ = hparams(values, dict.fromkeys(metric_tags, 0.0))
        for summary in (experiment, start):
            self.writer.file_writer.add_summary(summary)

    def end_hparams(self) -> None:
        _, _, end = hparams({}, {})
        self.writer.file_writer.add_summary(end)

    def close(self) -> None:
        self.writer.close()
