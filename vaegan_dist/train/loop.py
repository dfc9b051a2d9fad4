"""The per-worker training function: the same code under Ray Train (N workers), with one worker, in tests.

    build model and optimisers -> resume from the checkpoint rank 0 chose -> wrap each network for DDP
    -> stream batches -> step -> every log_every: finite check + scalars + progress line
    -> every eval_every: evaluation + report
    -> every image_every: sample and reconstruction grids
    -> every checkpoint_every: finite check + checkpoint + report

Ray hears from a run at its evaluations and checkpoints only, never at the log steps: Train's controller takes
one report per worker per poll and a worker's report waits for the previous one to be taken (ray_compat item 3),
so a report at every log step made ``train.log_every`` a brake (bench/RESULTS.md, "Train V2's report poll").
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from vaegan_dist.config import Config
from vaegan_dist.data.codec import interleave_rows, to_unit_range
from vaegan_dist.data.stream import first_images, stable_seed, training_stream
from vaegan_dist.errors import TrainingError
from vaegan_dist.model import VAEGAN, build_model
from vaegan_dist.model.store import load_state
from vaegan_dist.objectives import model_kind
from vaegan_dist.train.checkpoint import save_checkpoint
from vaegan_dist.train.ema import WeightAverage
from vaegan_dist.train.evaluation import TrainingEvaluation
from vaegan_dist.train.flops import Utilisation, count_step_flops
from vaegan_dist.train.health import NonFiniteWatch, check_finite_weights
from vaegan_dist.train.job import TrainJob
from vaegan_dist.train.optim import apply_settings, build_optimizers
from vaegan_dist.train.peak import cache_path as peak_cache_path
from vaegan_dist.train.peak import peak_gflops, peak_key, raise_peak
from vaegan_dist.train.precision import describe
from vaegan_dist.train.progress import MetricMeter, progress_line
from vaegan_dist.train.runtime import Runtime, runtime_for
from vaegan_dist.train.session import RaySession, Session, check_same_step, checkpoint_write_failed
from vaegan_dist.train.step import TrainStep
from vaegan_dist.train.tb_logger import TensorBoardLogger, swept_values


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
                grids["reconstructions"] = interleave_rows(x, recon)
    finally:
        model.train()
    return grids


def _utilisation(model: VAEGAN, cfg: Config, runtime: Runtime) -> Utilisation | None:
    """Rank 0: the step's FLOPs (counted) and the device's peak (measured once per machine), announced with the
    precision the step computes in. A figure to watch, never a reason to stop a run: a failure is one warning."""
    precision = describe(runtime.autocast_dtype, runtime.device)
    try:
        flops = count_step_flops(model.networks(), model_kind(cfg.model.kind), cfg.objective, cfg.model.latent_dim,
                                 cfg.data.image_size, cfg.data.batch_size, len(model.attributes))
        dtype = runtime.autocast_dtype or torch.float32
        key = peak_key(runtime.device, dtype)
        peak, cached = peak_gflops(runtime.device, dtype)
    except Exception as err:  # any failure only costs the share-of-peak figure
        print(f"{precision}; the share of peak is not shown ({type(err).__name__}: {str(err)[:200]})", flush=True)
        return None
    print(f"{precision}; step {flops.per_step / 1e9:.1f} GFLOP per worker; device peak {peak:.0f} GFLOP/s "
          f"({'cached' if cached else 'measured'}, {peak_cache_path()})", flush=True)
    return Utilisation(flops, peak, on_new_peak=lambda rate: raise_peak(key, rate))


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
            check_still_owner(job, done)
            try:
                save_checkpoint(directory, model=model, optimizers=optimizers, step=done, cfg=job.cfg,
                                data_position={"step": done, "stream_id": start,
                                               "images_per_rank": done * job.cfg.data.batch_size},
                                metrics=metrics, ema=average, start_token=job.start_token)
            except OSError as err:  # disk full, quota: the staging directory goes, earlier checkpoints stay
                raise TrainingError(checkpoint_write_failed(done, err)) from None
        session.report({**metrics, "step": done}, directory, done)


OWNER_FILE = ".owner"  # a PBT trial's run directory: the token of the start that owns it now


def check_still_owner(job: TrainJob, step: int) -> None:
    """A PBT trial's run that Tune stopped can still be finishing a step when the trial starts again and adopts a
    donor's checkpoint; it must not then write a checkpoint of its own into the directory (a newer step would be
    resumed from instead of the donor's)."""
    if not job.start_token or job.run.remote:
        return
    try:
        owner = (job.run.local_dir / OWNER_FILE).read_text().strip()
    except OSError:
        return
    if owner != job.start_token:
        raise TrainingError(f"step {step}: {job.run.where()} belongs to a later start of this trial; this one stops "
                            "without writing a checkpoint")


@contextlib.contextmanager
def _disk_errors(step: int, what: str):
    try:
        yield
    except OSError as err:
        raise TrainingError(f"step {step}: {what} could not be written ({err.strerror or err}); the checkpoints "
                            "on disk are intact: free space, then rerun the same command to resume") from None


def train_loop(job: TrainJob, session: Session | None = None) -> dict[str, float]:
    """Train ``job`` until ``train.steps``; returns the last logged metrics."""
    session = session or RaySession(None if job.run.remote else job.run.local_dir)
    run = _WorkerRun.build(job, session)
    if run.start >= run.total:
        if session.world_rank == 0:
            print(f"run {job.run.name} is already at step {run.start} of {run.total}; nothing to do", flush=True)
        return {}
    run.prepare_training()
    for step in range(run.start, run.total):
        run.train_step(step)
        done = step + 1
        due = run.due(done)
        if due.any:
            run.watch.check()  # every rank, same steps: stops all of them together
        if due.log:
            run.collect_logged()
        if due.eval:
            run.evaluate(done)
        run.last = {**run.last, **run.last_eval}  # Ray's reports (and Tune's schedulers) see the newest evaluation
        run.show(done, due)
        if due.checkpoint:
            run.checkpoint(done, due.last)
        elif due.eval:  # every rank reports at the same steps: rank 0's evaluation ends at this barrier
            session.report({**run.last, "step": done}, None, done)
    run.close()
    return run.last


@dataclass(frozen=True)
class _Due:
    """What happens after a step (the same on every rank: decided from the step number alone)."""

    log: bool
    eval: bool
    grids: bool
    checkpoint: bool
    last: bool

    @property
    def any(self) -> bool:
        return self.log or self.eval or self.checkpoint


class _WorkerRun:
    """One worker's training run, as named steps: build and resume, prepare, step, and what follows a step
    (log, evaluate, show, checkpoint). Rank 0 alone keeps the weight average, the TensorBoard writer, the fixed
    grid inputs and the evaluation."""

    def __init__(self, job: TrainJob, session: Session, runtime: Runtime, model: VAEGAN,
                 optimizers: dict[str, torch.optim.Optimizer], start: int, average: WeightAverage | None,
                 utilisation: Utilisation | None = None):
        self.job, self.cfg, self.session, self.runtime = job, job.cfg, session, runtime
        self.model, self.optimizers, self.start, self.average = model, optimizers, start, average
        self.utilisation = utilisation
        self.total = job.cfg.train.steps
        self.kind = model_kind(job.cfg.model.kind)
        self.shown = average.model if average is not None else model  # what grids and evaluations show
        self.last: dict[str, float] = {}
        self.last_eval: dict[str, float] = {}
        # Made by prepare_training, once the resume has settled the weights: the DDP wrappers and the step, the
        # data stream, the finite watch; on rank 0 the evaluation, TensorBoard and the grids' fixed inputs.
        self.step_fn: TrainStep | None = None
        self.stream: Iterator | None = None
        self.watch: NonFiniteWatch | None = None
        self.evaluation: TrainingEvaluation | None = None
        self.tb: TensorBoardLogger | None = None
        self.z_fixed: torch.Tensor | None = None
        self.x_fixed: torch.Tensor | None = None
        self.y_fixed: torch.Tensor | None = None
        self.meter = MetricMeter()
        # A sweep's trial: the swept values as scalars, so that a PBT trial's schedule shows as curves over steps.
        self.schedule = swept_values(job.cfg, job.hparam_keys)
        self.first_step_at: float | None = None  # wall clock: start-up latency is measured against the submit time
        self.loop_started = 0.0  # perf_counter at the first step

    @classmethod
    def build(cls, job: TrainJob, session: Session) -> _WorkerRun:
        """The model (identical initial weights on every rank), its optimisers, and the checkpoint to resume."""
        cfg = job.cfg
        runtime = runtime_for(session.gpu, session.device(), cfg.train.precision)
        torch.manual_seed(cfg.train.seed)
        model = build_model(cfg.model, cfg.data.image_size, job.data.attributes)
        # Before the DDP wrappers and the data stream start: the peak is measured while the other ranks wait.
        utilisation = _utilisation(model, cfg, runtime) if session.world_rank == 0 else None
        if cfg.model.sync_batchnorm and session.world_size > 1:
            for name, network in model.networks().items():
                setattr(model, name, nn.SyncBatchNorm.convert_sync_batchnorm(network))
        model.to(runtime.device, memory_format=runtime.memory_format)
        optimizers = build_optimizers(model, cfg.optim)
        start, average = _resume(model, optimizers, session, job, runtime)
        if session.world_rank != 0:  # the replicas' weights are equal under DDP: rank 0 averages, shows, saves
            average = None
        return cls(job, session, runtime, model, optimizers, start, average, utilisation)

    def prepare_training(self) -> None:
        """DDP wrappers, the step, the data stream, the finite watch; on rank 0 the evaluation, TensorBoard and
        the fixed inputs of the grids."""
        cfg, rank, start = self.cfg, self.session.world_rank, self.start
        networks = {name: self.session.prepare(network) for name, network in self.model.networks().items()}
        self.step_fn = TrainStep(networks, self.optimizers, cfg, self.runtime, kind=self.kind,
                                 noise_seed=stable_seed("noise", cfg.train.seed, rank, start) % 2**63,
                                 ema=None if self.average is None else (self.average, self.model))
        self.stream = training_stream(
            self.job.data, cfg.data.split, cfg.data.image_size, cfg.data.batch_size, rank=rank,
            world_size=self.session.world_size, seed=cfg.train.seed, stream_id=start,
            shuffle_buffer=cfg.data.shuffle_buffer, loader_workers=cfg.data.loader_workers, hflip=cfg.data.hflip,
            augment=cfg.data.augment)
        self.watch = NonFiniteWatch(self.runtime.device, self.kind.loss_terms)
        if self.job.evaluator is not None and cfg.train.eval_every > 0:  # on every rank: each scores its share
            self.evaluation = TrainingEvaluation(self.job, self.runtime.device, self.model)
        if rank == 0:
            self.tb = TensorBoardLogger(self.job.run.local_dir, purge_step=start + 1 if start else None)
            self.tb.start_hparams(cfg, [*self.kind.loss_terms, *(self.evaluation.tags if self.evaluation else [])],
                                  self.job.hparam_keys)
            self.z_fixed = torch.randn(cfg.train.grid_size, cfg.model.latent_dim,
                                       generator=torch.Generator().manual_seed(cfg.train.seed)).to(self.runtime.device)
            self.x_fixed, attrs_fixed = first_images(self.job.grid_data, self.job.grid_split, cfg.train.grid_size)
            if self.model.conditioned:  # one sample per fixed image, with its attributes
                self.z_fixed, self.y_fixed = self.z_fixed[: len(self.x_fixed)], attrs_fixed.to(self.runtime.device)
        self.loop_started = time.perf_counter()

    def train_step(self, step: int) -> None:
        images, attrs = next(self.stream)
        metrics = self.step_fn(images, step, attributes=attrs if self.model.conditioned else None)
        self.watch.update(metrics, step)
        self.meter.add(metrics, images.shape[0])
        self.first_step_at = self.first_step_at or time.time()

    def due(self, done: int) -> _Due:
        train, last = self.cfg.train, done == self.total
        return _Due(log=done % train.log_every == 0 or last,
                    eval=train.eval_every > 0 and (done % train.eval_every == 0 or last),
                    grids=done % train.image_every == 0 or last,
                    checkpoint=done % train.checkpoint_every == 0 or last, last=last)

    def collect_logged(self) -> None:
        self.last = {**self.meter.means(), "perf/first_step_unix": self.first_step_at}
        if self.utilisation is not None:
            self.last.update(self.utilisation.metrics(self.last["perf/step_time_s"]))

    def evaluate(self, done: int) -> None:
        """Every rank scores its share of rank 0's shown weights on the held-out images; rank 0 logs the metrics."""
        if self.evaluation is None:
            return
        values = self.evaluation(self.shown)
        if values is None:  # not rank 0
            return
        self.last_eval = values
        self.last_eval["perf/eval_share"] = self.evaluation.seconds / (time.perf_counter() - self.loop_started)
        with _disk_errors(done, "the TensorBoard logs"):
            self.tb.scalars(self.last_eval, done)

    def show(self, done: int, due: _Due) -> None:
        """Rank 0: scalars, the progress line, the evaluation line and the sample grids."""
        if self.tb is None:
            return
        if due.log:
            self.tb.scalars({k: v for k, v in self.last.items()
                             if k != "perf/first_step_unix" and k not in self.last_eval}, done)
            self.tb.scalars(self.schedule, done)
            print(progress_line(done, self.total, self.last, self.session.world_size, self.kind.progress),
                  flush=True)
        if due.eval and self.evaluation is not None:
            print(self.evaluation.line(done, self.last_eval), flush=True)
        if due.grids:
            with _disk_errors(done, "the sample grids"):
                for tag, images in _grids(self.shown, self.z_fixed, self.x_fixed, self.y_fixed, self.runtime).items():
                    self.tb.grid(tag, images, done)

    def checkpoint(self, done: int, last: bool) -> None:
        check_finite_weights(self.model.networks(), done)
        if self.tb is not None:  # before the report: a Tune scheduler may stop the trial as soon as it sees it
            with _disk_errors(done, "the TensorBoard logs"):
                if last:
                    self.tb.end_hparams()
                self.tb.writer.flush()
                self.job.run.upload("tensorboard", "samples")
        _checkpoint(self.session, self.job, self.model, self.optimizers, done, self.start, self.last, self.average)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()  # everything was flushed and uploaded before the last report
