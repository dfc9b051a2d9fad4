"""What rank 0 shows in TensorBoard, and the sample grids it also saves as PNG files beside it."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.tensorboard import SummaryWriter

from vaegan_dist.config import Config, config_to_flat_dict
from vaegan_dist.data.codec import write_grid


def flat_hparams(cfg: Config) -> dict[str, float | int | str | bool]:
    flat = config_to_flat_dict(cfg)
    return {"preset": cfg.preset, **{k: v for k, v in flat.items() if isinstance(v, (int, float, str, bool))}}


class TensorBoardLogger:
    """Scalars, image grids and hparams under ``run_dir/tensorboard``; grids also under ``run_dir/samples``."""

    def __init__(self, run_dir: Path, purge_step: int | None = None):
        self.log_dir = Path(run_dir) / "tensorboard"
        self.samples_dir = Path(run_dir) / "samples"
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        # purge_step drops events a crashed run logged after its last checkpoint, so curves do not fork.
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step or None)

    def scalars(self, metrics: dict[str, float], step: int) -> None:
        for tag, value in metrics.items():
            self.writer.add_scalar(tag, value, step)

    def grid(self, tag: str, images: torch.Tensor, step: int, nrow: int = 8) -> Path:
        """``images`` in [-1, 1], [N, 3, S, S]; returns the PNG written for users without TensorBoard."""
        path = self.samples_dir / f"{tag.replace('/', '_')}_{step:08d}.png"
        self.writer.add_image(tag, write_grid(images, path, nrow), step)
        return path

    def hparams(self, cfg: Config, final_metrics: dict[str, float]) -> None:
        metrics = {f"final/{k}": v for k, v in final_metrics.items()}
        self.writer.add_hparams(flat_hparams(cfg), metrics, run_name="hparams")

    def close(self) -> None:
        self.writer.close()
