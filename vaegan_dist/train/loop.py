"""The per-worker training function: the same code under Ray Train (N workers), with one worker, in tests.

    build model and optimisers -> resume from the checkpoint rank 0 chose -> wrap each network for DDP
    -> stream batches -> step -> every log_every: finite check + scalars + progress line + report
    -> every image_every: sample and reconstruction grids
    -> every checkpoint_every: finite check + checkpoint + report
"""

from __future__ import annotations

import contextlib
import time

import torch
from torch import nn

from vaegan_dist.data.codec import to_unit_range
from vaegan_dist.data.stream import first_images, stable_seed, training_stream
from vaegan_dist.errors import TrainingError
from vaegan_dist.model import VAEGAN, build_model
from vaegan_dist.model.store import load_state
from vaegan_dist.objectives import model_kind
from vaegan_dist.train.checkpoint import save_checkpoint
from vaegan_dist.train.ema import WeightAverage
from vaegan_dist.train.evaluation import TrainingEvaluation
from vaegan_dist.train.health import NonFiniteWatch, check_finite_weights
from vaegan_dist.train.job import TrainJob
from vaegan_dist.train.optim import apply_settings, build_optimizers
from vaegan_dist.train.progress import MetricMeter, progress_line
from vaegan_dist.train.runtime import Runtime, runtime_for
from vaegan_dist.train.session import RaySession, Session, check_same_step, checkpoint_write_failed
from vaegan_dist.train.step import TrainStep
from vaegan_dist.train.tb_logger import TensorBoardLogger


@torch.no_grad()
def _grids(model: VAEGAN, z_fixed: torch.Tensor, x_fixed: torch.Tensor, y_fixed: torch.Tensor | None,
           runtime: Runtime) -> dict[str, torch.Tensor]:
    """Fixed-z samples and, for kinds with an encoder, fixed-batch reconstructions (rows alternate original /
    reconstruction). A conditioned model's samples get the attributes of the fixed images (``y_fixed``)."""
    model.eval()
    try:
        with runtime.autocast():
            grids = {"samples": model.decoder(z_fixed, y_fixed)}
            if model.can_reconstruct:
                x = to_unit_range(x_fixed, runtime.device, runtime.memory_format)
                recon = model.decoder(model.encoder(x, y_fixed)[0], y_fixed).to(x.dtype)
                grids["reconstructions"] = torch.cat([t for r in range(0, x.shape[0], 8)
                                                      for t in (x[r : r + 8], recon[r : r + 8])])
    finally:
        model.train()
    return grids


def _resume(model: VAEGAN, optimizers: dict[str, torch.optim.Optimizer], session: Session, job: TrainJob,
            runtime: Runtime) -> tuple[int, WeightAverage | None]:
    """Load the checkpoint rank 0 chose (if any); return its step (the same on every rank) and the weight
    average if the run keeps one: the saved one, or, for a run that turns it on now, one that starts from the
    loaded weights."""
    start, saved_average = 0, None
    with session.restore_dir() as checkpoint_dir:
        if checkpoint_dir is not None:
            state = load_state(checkpoint_dir, map_location=runtime.device)
            saved = tuple(state.get("attributes", ()))
            if saved != model.attributes:
                raise TrainingError(f"{checkpoint_dir}: the checkpoint is conditioned on attributes {list(saved)}, "
                                    f"but this run's data and model.condition give {list(model.attributes)}; "
                                    "resume with the data and model.condition it was trained with")
            model.load_state_dict(state["model"])
            for name, opt in optimizers.items():
                opt.load_state_dict(state["optimizers"][name])
            start = int(state["step"])
            saved_average, where = state.get("ema"), checkpoint_dir
            if session.world_rank == 0:
                print(f"resuming from {checkpoint_dir.name} at step {start}", flush=True)
    apply_settings(optimizers, job.cfg.optim)  # settings changed on the command line win over the saved ones
    check_same_step(start)
    optim = job.cfg.optim
    if optim.ema_halflife_kimg <= 0:
        return start, None
    average = WeightAverage(model, optim.ema_halflife_kimg, optim.ema_rampup)
    if saved_average is not None:
        try:
            average.load_state_dict(saved_average)
        except (AttributeError, RuntimeError, TypeError, ValueError) as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise TrainingError(f"{where}: the checkpoint's 'ema' entry does not fit the model ({first[:200]}); "
                                "restore the checkpoint or choose another train.name") from None
    return start, average


def _checkpoint(session: Session, job: TrainJob, model: VAEGAN, optimizers: dict[str, torch.optim.Optimizer],
                done: int, start: int, metrics: dict[str, float], average: WeightAverage | None) -> None:
    """Rank 0 writes the checkpoint into the session's staging directory; every rank reports (a barrier)."""
    staging = session.staging_dir(done) if session.world_rank == 0 else contextlib.nullcontext()
    with staging as directory:
        if directory is not None:
            try:
                save_checkpoint(directory, model=model, optimizers=optimizers, step=done, cfg=job.cfg,
                                data_position={"step": done, "stream_id": start,
                                               "images_per_rank": done * job.cfg.data.batch_size},
                                metrics=metrics, ema=average)
            except OSError as err:  # disk full, quota: the staging directory goes, earlier checkpoints stay
                raise TrainingError(checkpoint_write_failed(done, err)) from None
        session.report({**metrics, "step": done}, directory, done)


@contextlib.contextmanager
def _disk_errors(step: int, what: str):
    try:
        yield
    except OSError as err:
        raise TrainingError(f"step {step}: {what} could not be written ({err.strerror or err}); the checkpoints "
                            "on disk are intact: free space, then rerun the same command to resume") from None


def train_loop(job: TrainJob, session: Session | None = None) -> dict[str, float]:
    """Train ``job`` until ``train.steps``; returns the last logged metrics."""
    cfg, run = job.cfg, job.run
    session = session or RaySession(None if run.remote else run.local_dir)
    rank, world = session.world_rank, session.world_size
    runtime = runtime_for(session.gpu, session.device())
    kind = model_kind(cfg.model.kind)
    total = cfg.train.steps

    torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
    model = build_model(cfg.model, cfg.data.image_size, job.data.attributes)
    if cfg.model.sync_batchnorm and world > 1:
        for name, network in model.networks().items():
            setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(network))
    model.to(runtime.device, memory_format=runtime.memory_format)
    optimizers = build_optimizers(model, cfg.optim)
    start, average = _resume(model, optimizers, session, job, runtime)
    if rank != 0:  # every replica's weights are the same under DDP: rank 0 alone averages, shows and saves them
        average = None
    shown = average.model if average is not None else model  # what grids and evaluations show
    if start >= total:
        if rank == 0:
            print(f"run {run.name} is already at step {start} of {total}; nothing to do", flush=True)
        return {}

    networks = {name: session.prepare(network) for name, network in model.networks().items()}
    step_fn = TrainStep(networks, optimizers, cfg, runtime, kind=kind,
                        noise_seed=stable_seed("noise", cfg.train.seed, rank, start) % 2**63,
                        ema=None if average is None else (average, model))
    stream = training_stream(
        job.data, cfg.data.split, cfg.data.image_size, cfg.data.batch_size, rank=rank, world_size=world,
        seed=cfg.train.seed, stream_id=start, shuffle_buffer=cfg.data.shuffle_buffer,
        loader_workers=cfg.data.loader_workers, hflip=cfg.data.hflip, augment=cfg.data.augment)
    watch = NonFiniteWatch(runtime.device, kind.loss_terms)

    tb = z_fixed = x_fixed = y_fixed = evaluation = None
    if rank == 0:
        if job.evaluator is not None and cfg.train.eval_every > 0:
            evaluation = TrainingEvaluation(job, runtime.device)
        tb = TensorBoardLogger(run.local_dir, purge_step=start)
        tb.start_hparams(cfg, [*kind.loss_terms, *(evaluation.tags if evaluation else [])], job.hparam_keys)
        z_fixed = torch.randn(cfg.train.grid_size, cfg.model.latent_dim,
                              generator=torch.Generator().manual_seed(cfg.train.seed)).to(runtime.device)
        x_fixed, attrs_fixed = first_images(job.grid_data, job.grid_split, cfg.train.grid_size)
        if model.conditioned:  # one sample per fixed image, with its attributes
            z_fixed, y_fixed = z_fixed[: len(x_fixed)], attrs_fixed.to(runtime.device)

    meter, last, last_eval = MetricMeter(), {}, {}
    first_step_at = None  # wall clock: start-up latency is measured against the driver's submit time
    loop_started = time.perf_counter()
    for step in range(start, total):
        images, attrs = next(stream)
        metrics = step_fn(images, step, attributes=attrs if model.conditioned else None)
        watch.update(metrics, step)
        meter.add(metrics, images.shape[0])
        first_step_at = first_step_at or time.time()
        done = step + 1
        is_last = done == total
        log_now = done % cfg.train.log_every == 0 or is_last
        checkpoint_now = done % cfg.train.checkpoint_every == 0 or is_last
        eval_now = cfg.train.eval_every > 0 and (done % cfg.train.eval_every == 0 or is_last)
        if log_now or checkpoint_now or eval_now:
            watch.check()  # every rank, same steps: stops all of them together
        if log_now:
            last = {**meter.means(), "perf/first_step_unix": first_step_at}
        if eval_now and evaluation is not None:
            last_eval = evaluation(shown)
            last_eval["perf/eval_share"] = evaluation.seconds / (time.perf_counter() - loop_started)
            with _disk_errors(done, "the TensorBoard logs"):
                tb.scalars(last_eval, done)
        last = {**last, **last_eval}  # Ray's reports (and Tune's schedulers) see the newest evaluation
        if tb is not None:
            if log_now:
                tb.scalars({k: v for k, v in last.items() if k != "perf/first_step_unix" and k not in last_eval}, done)
                print(progress_line(done, total, last, world, kind.progress), flush=True)
            if eval_now and evaluation is not None:
                print(evaluation.line(done, last_eval), flush=True)
            if done % cfg.train.image_every == 0 or is_last:
                with _disk_errors(done, "the sample grids"):
                    for tag, images in _grids(shown, z_fixed, x_fixed, y_fixed, runtime).items():
                        tb.grid(tag, images, done)
        if checkpoint_now:
            check_finite_weights(model.networks(), done)
            if tb is not None:  # before the report: a Tune scheduler may stop the trial as soon as it sees it
                with _disk_errors(done, "the TensorBoard logs"):
                    if is_last:
                        tb.end_hparams()
                    tb.writer.flush()
                    run.upload("tensorboard", "samples")
            _checkpoint(session, job, model, optimizers, done, start, last, average)
        elif log_now or eval_now:  # every rank reports at the same steps: rank 0's evaluation ends at this barrier
            session.report({**last, "step": done}, None, done)

    if tb is not None:
        tb.close()  # everything was flushed and uploaded before the last report
    return last
