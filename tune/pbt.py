"""Population-based training (Jaderberg et al. 2017) with Ray Tune's ``PopulationBasedTraining``: a population of
trials trains at once, and every ``--perturb-every`` steps a trial in the bottom quantile copies the whole
checkpoint of one in the top quantile (networks, optimisers, weight average, step, data position) and goes on
with that trial's hyperparameters, perturbed.

What makes Tune's PBT work with a trial that runs its own Ray Train run (Train-in-Tune silently never
exploits, ../shared/PITFALLS.md):

- the trial reports each checkpoint to Tune itself (:mod:`vaegan_tune.trial`), so that Tune holds the
  donor's checkpoint and hands it to the exploiting trial, whose run then adopts it (:mod:`vaegan_tune.adopt`);
- the trials checkpoint at every perturbation step (``train.checkpoint_every`` divides ``--perturb-every``),
  so the checkpoint a trial copies is the one its donor was ranked on;
- the whole population exists from the start (no searcher limit: a paused trial counts as live to Tune's
  searchers, so a limit of 1 would make a population of 1), and at most as many trials run at once as the
  cluster holds: each trial's driver takes its share of a resource only the head node has (item 10 of
  :mod:`vaegan_dist.ray_compat`), and Tune pauses and resumes trials in turn at the perturbation steps.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import random
from typing import Any

from vaegan_dist.config import Config, ConfigError
from vaegan_dist.ray_compat import HEAD_NODE_RESOURCE
from vaegan_dist.train.resume import ARCHITECTURE_KEYS
from vaegan_tune.space import CONTINUOUS, SearchSpace

CADENCE_KEYS = ("train.checkpoint_every", "train.keep_checkpoints")
DEFAULT_QUANTILE = 0.25
DEFAULT_RESAMPLE = 0.25
PERTURBATION_FACTORS = (1.2, 0.8)  # Tune's defaults, the paper's
TUNE_CHECKPOINTS_KEPT = 4  # per trial; Tune warns that 2 or fewer can delete a donor's before it is copied
# A trial's run keeps at least this many: while its driver copies checkpoint N into Tune, N + 1 can wait in the
# queue and N + 2 be registered by Train, which then deletes the oldest.
MIN_KEPT = 3


def check_pbt_space(space: SearchSpace) -> None:
    """A key that cannot change in a running trial cannot be perturbed: the model's shape (``model.*``), the image
    size, and whatever else the resume check refuses (the optimiser's algorithm)."""
    for d in space.dimensions:
        if d.key.startswith("model.") or d.key in ARCHITECTURE_KEYS:
            raise ConfigError(f"{space.path}: key {d.key!r} cannot change during a run, so --scheduler pbt cannot "
                              "perturb it; sweep it with --scheduler asha, or leave it out of the space")
        if d.key in CADENCE_KEYS:
            raise ConfigError(f"{space.path}: key {d.key!r} is set by --scheduler pbt for every trial (checkpoints at "
                              "the perturbation steps, kept long enough to be copied); leave it out of the space")


@dataclasses.dataclass(frozen=True)
class Cadence:
    perturb_every: int  # steps between perturbations (Tune's perturbation_interval on the "step" attribute)
    checkpoint_every: int  # what every trial of the sweep checkpoints at


def pbt_cadence(base: Config, metric: str, perturb_every: int, given: set[str]) -> Cadence:
    """When trials are compared and perturbed: every ``perturb_every`` steps (0: the evaluation interval, or the
    checkpoint interval for a training-loss metric). Each perturbation step must have a fresh ``metric`` and a
    checkpoint; the checkpoint interval becomes the perturbation interval unless the user set one that divides
    it (``given``: the keys on the command line)."""
    train = base.train
    evaluated = metric.startswith("eval/")
    if evaluated and train.eval_every <= 0:
        raise ConfigError(f"--metric {metric} needs evaluations during training; got train.eval_every="
                          f"{train.eval_every}")
    every = perturb_every or (train.eval_every if evaluated else train.checkpoint_every)
    # Named as the user would set it, whether they did or the default chose it.
    named = f"--perturb-every {every}" if perturb_every else f"the perturbation interval ({every} steps)"
    if every < 1:
        raise ConfigError(f"{named}: must be a positive number of steps")
    if every >= train.steps:
        raise ConfigError(f"{named}: at or beyond train.steps={train.steps}, no trial would ever be perturbed; "
                          "lower --perturb-every or raise train.steps")
    if evaluated and every % train.eval_every:
        raise ConfigError(f"{named}: trials are compared on {metric}, evaluated every "
                          f"train.eval_every={train.eval_every} steps; use a multiple of it")
    checkpoint_every = every
    if "train.checkpoint_every" in given:
        if every % train.checkpoint_every:
            raise ConfigError(f"{named}: a trial copies its donor's checkpoint of the perturbation step, but "
                              f"train.checkpoint_every={train.checkpoint_every} does not divide it")
        checkpoint_every = train.checkpoint_every
    if train.keep_checkpoints < MIN_KEPT:
        raise ConfigError(f"config key 'train.keep_checkpoints' is {train.keep_checkpoints}; --scheduler pbt needs "
                          f"{MIN_KEPT} or more (the checkpoint a trial's driver is handing to Tune must outlive the "
                          "next two)")
    return Cadence(every, checkpoint_every)


def check_fractions(quantile: float, resample: float) -> None:
    if not (isinstance(quantile, float) and 0.0 < quantile <= 0.5):
        raise ConfigError(f"--quantile {quantile!r}: the share of trials that copy (and of trials copied) must be "
                          "in (0, 0.5]")
    if not (isinstance(resample, float) and 0.0 <= resample <= 1.0):
        raise ConfigError(f"--resample {resample!r}: a probability, in [0, 1]")


def clamp_to_space(config: dict[str, Any], bounds: dict[str, tuple[float, float]]) -> dict[str, Any]:
    """Tune's explore multiplies a continuous value by 1.2 or 0.8 without bounds; the space's bounds are what was
    checked before Ray started (alone and together), so a perturbed value stays inside them."""
    for key, (low, high) in bounds.items():
        if key in config and isinstance(config[key], (int, float)):
            config[key] = min(max(float(config[key]), low), high)
    return config


def pbt_scheduler(space: SearchSpace, perturb_every: int, quantile: float, resample: float, seed: int):
    import warnings

    from ray.tune.schedulers import PopulationBasedTraining

    # Tune suggests reusing actors; a trial's actor only waits on its own Train run, so there is nothing to reuse.
    warnings.filterwarnings("ignore", message="Consider boosting PBT performance")

    mutations = {d.key: d.tune_domain() if d.kind in CONTINUOUS else list(d.values) for d in space.dimensions}
    bounds = {d.key: (float(d.values[0]), float(d.values[1])) for d in space.dimensions if d.kind in CONTINUOUS}
    random.seed(seed)  # Tune's PBT draws donors and perturbations from the module's global generator
    return PopulationBasedTraining(
        time_attr="step", perturbation_interval=perturb_every,  # metric and mode: the Tuner's, set by Tune
        hyperparam_mutations=mutations, quantile_fraction=quantile, resample_probability=resample,
        perturbation_factors=PERTURBATION_FACTORS, custom_explore_fn=functools.partial(clamp_to_space, bounds=bounds))


MAX_GATED = 28  # trials at once that a share of the head node's unit can bound (see gated_drivers)
RAY_CLEANER_SHARE = 0.001  # what Train V2 places each run's placement-group cleaner with, on the head node


def gated_drivers(concurrent: int) -> tuple[int, dict[str, float]]:
    """(trials at once, a trial driver's resources) for a population larger than the cluster holds at once: each
    driver takes a share of the head node's one unit (item 10 of ray_compat) such that ``n`` shares and the ``n``
    runs' cleaners fit and ``n + 1`` shares do not; no CPU, so a head node started with none (KubeRay's) places
    them. Ray keeps resources to 4 decimals, so the shares tell n from n + 1 up to MAX_GATED trials at once; a
    cluster that holds more runs MAX_GATED at a time."""
    n = min(concurrent, MAX_GATED)
    share = math.ceil(10_000 / (n + 1) + 1) / 10_000
    return n, {HEAD_NODE_RESOURCE: share}
