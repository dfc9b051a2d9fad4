"""The per-worker training function: the same code under Ray Train (N workers), with one worker, in tests.

    build model and optimisers -> resume from the session's checkpoint -> wrap each network for DDP
    -> stream batches -> step -> every log_every: scalars + progress line + report
    -> every image_every: sample and reconstruction grids -> every checkpoint_every: checkpoint + report
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from torch import nn

from vaegan_dist.config import config_from_dict, validate
from vaegan_dist.data.sources import open_source
from vaegan_dist.data.stream import first_images, stable_seed, training_stream
from vaegan_dist.model import VAEGAN, build_model
from vaegan_dist.train.checkpoint import load_state, save_checkpoint
from vaegan_dist.train.optim import build_optimizers
from vaegan_dist.train.progress import MetricMeter, progress_line
from vaegan_dist.train.runtime import Runtime, runtime_for
from vaegan_dist.train.session import RaySession, Session
from vaegan_dist.train.step import TrainStep, to_unit_range
from vaegan_dist.train.storage import RunStorage
from vaegan_dist.train.tb_logger import TensorBoardLogger


def _sync_batchnorm(model: VAEGAN) -> None:
    for name in ("encoder", "decoder", "discriminator"):
        setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(getattr(model, name)))


@torch.no_grad()
def _grids(model: VAEGAN, z_fixed: torch.Tensor, x_fixed: torch.Tensor, runtime: Runtime) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed-z samples and fixed-batch reconstructions (rows alternate original / reconstruction)."""
    model.eval()
    try:
        with runtime.autocast():
            samples = model.decoder(z_fixed)
            x = to_unit_range(x_fixed, runtime.device, runtime.memory_format)
            recon = model.decoder(model.encoder(x)[0])
    finally:
        model.train()
    rows = [t for r in range(0, x.shape[0], 8) for t in (x[r : r + 8], recon[r : r + 8].to(x.dtype))]
    return samples, torch.cat(rows)


def train_loop(config: dict, session: Session | None = None) -> dict[str, float]:
    """Train until ``train.steps``; ``config`` is ``config_to_dict`` of a resolved Config (absolute paths)."""
    cfg = validate(config_from_dict(config))
    storage = RunStorage(cfg.train.storage_path, cfg.train.name)
    session = session or RaySession(None if storage.remote else storage.local_dir)
    rank, world = session.world_rank, session.world_size
    runtime = runtime_for(session.gpu, session.device())
    total = cfg.train.steps

    torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
    model = build_model(cfg.model, cfg.data.image_size)
    if cfg.model.sync_batchnorm and world > 1:
        _sync_batchnorm(model)
    model.to(runtime.device, memory_format=runtime.memory_format)
    optimizers = build_optimizers(model, cfg.optim)

    start = 0
    with session.restore_dir() as checkpoint_dir:
        if checkpoint_dir is not None:
            state = load_state(checkpoint_dir, map_location=runtime.device)
            model.load_state_dict(state["model"])
            for name, opt in optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
            start = int(state["step"])
            if rank == 0:
                print(f"resuming from {checkpoint_dir.name} at step {start}", flush=True)
    if start >= total:
        if rank == 0:
            print(f"run {cfg.train.name} is already at step {start} of {total}; nothing to do", flush=True)
        return {}

    networks = {name: session.prepare(getattr(model, name)) for name in ("encoder", "decoder", "discriminator")}
    step_fn = TrainStep(**networks, optimizers=optimizers, cfg=cfg, runtime=runtime,
                        noise_seed=stable_seed("noise", cfg.train.seed, rank, start) % 2**63)
    stream = training_stream(
        cfg.data.source, cfg.data.split, cfg.data.image_size, cfg.data.batch_size, rank=rank, world_size=world,
        seed=cfg.train.seed, stream_id=start, shuffle_buffer=cfg.data.shuffle_buffer,
        loader_workers=cfg.data.loader_workers, hflip=cfg.data.hflip, augment=cfg.data.augment)

    tb = z_fixed = x_fixed = None
    if rank == 0:
        tb = TensorBoardLogger(storage.local_dir, purge_step=start)
        z_fixed = torch.randn(cfg.train.grid_size, cfg.model.latent_dim,
                              generator=torch.Generator().manual_seed(cfg.train.seed)).to(runtime.device)
        grid_split = "valid" if "valid" in open_source(cfg.data.source, cfg.data.split).splits else cfg.data.split
        x_fixed, _ = first_images(cfg.data.source, grid_split, cfg.train.grid_size)

    meter, last = MetricMeter(), {}
    first_step_at = None  # wall clock: start-up latency is measured against the driver's submit time
    for step in range(start, total):
        images, _ = next(stream)
        meter.add(step_fn(images, step), images.shape[0])
        first_step_at = first_step_at or time.time()
        done = step + 1
        is_last = done == total
        log_now = done % cfg.train.log_every == 0 or is_last
        checkpoint_now = done % cfg.train.checkpoint_every == 0 or is_last
        if log_now:
            last = {**meter.means(), "perf/first_step_unix": first_step_at}
        if tb is not None:
            if log_now:
                tb.scalars({k: v for k, v in last.items() if k != "perf/first_step_unix"}, done)
                print(progress_line(done, total, last, world), flush=True)
            if done % cfg.train.image_every == 0 or is_last:
                samples, recon = _grids(model, z_fixed, x_fixed, runtime)
                tb.grid("samples", samples, done)
                tb.grid("reconstructions", recon, done)
        if checkpoint_now:
            with tempfile.TemporaryDirectory(prefix="vaegan-ckpt-") as tmp:
                directory = None
                if rank == 0:
                    directory = save_checkpoint(
                        Path(tmp), model=model, optimizers=optimizers, step=done, cfg=cfg,
                        data_position={"step": done, "stream_id": start, "images_per_rank": done * cfg.data.batch_size},
                        metrics=last)
                session.report({**last, "step": done}, directory, done)
            if tb is not None:
                tb.writer.flush()
                storage.upload("tensorboard", "samples")
        elif log_now:
            session.report({**last, "step": done}, None, done)

    if tb is not None:
        tb.hparams(cfg, {k: v for k, v in last.items() if k.startswith(("loss/", "gan/"))})
        tb.close()
        storage.upload("tensorboard", "samples")
    return last
