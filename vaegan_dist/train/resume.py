"""The resume policy: what a rerun of the same ``train.name`` may change. A run directory must be ours; the
architecture and the optimiser are fixed by the newest checkpoint's tensors; a conditioned model keeps its
attributes; anything else may change and is named. Checked before anything is written to the directory."""

from __future__ import annotations

import yaml

from vaegan_dist.config import ConfigError, config_from_dict, config_to_dict, config_to_flat_dict
from vaegan_dist.errors import TrainingError
from vaegan_dist.model.store import find_checkpoints, load_state
from vaegan_dist.train.job import TrainJob

# A resumed run cannot change these: the checkpoint's tensors have their shapes.
# optim.algorithm: RMSProp's state cannot continue as Adam's (or the other way round).
ARCHITECTURE_KEYS = ("model.kind", "data.image_size", "model.latent_dim", "model.encoder_fc",
                      "model.discriminator_fc", "model.width", "model.condition", "model.spectral_norm",
                      "model.discriminator_norm", "model.autoencoder_norm",
                      "optim.algorithm")


def check_run_dir(job: TrainJob) -> None:
    """Everything that can refuse a run directory, before anything is written to it: the directory must be
    ours, and a rerun may not change the architecture (the checkpoint's tensors could not be loaded).
    Says which other keys changed."""
    job.run.check_ours()
    new = config_to_flat_dict(job.cfg)
    saved = {}
    for relative, text in job.run.saved_configs():  # the newest checkpoint's, then the run's
        try:
            saved[relative] = config_to_flat_dict(config_from_dict(yaml.safe_load(text), source=relative))
        except (ConfigError, yaml.YAMLError) as err:
            raise ConfigError(f"{job.run.where()}/{relative}: unreadable ({str(err).splitlines()[0]}); "
                              "restore it or choose another train.name") from None
    if not saved:
        return
    weights = next(iter(saved.values()))  # what the newest checkpoint's tensors were built with
    fixed = [f"{k}={weights[k]!r} (got {new[k]!r})" for k in ARCHITECTURE_KEYS if weights.get(k) != new.get(k)]
    if fixed:
        raise ConfigError(f"run {job.run.name} was started with {', '.join(fixed)}; a resumed run cannot "
                          "change the architecture or the optimiser: keep those values or choose another train.name")
    _check_same_attributes(job)
    old = saved.get("config.yaml", weights)
    changed = [f"{k}: {old[k]!r} -> {v!r}" for k, v in new.items() if k in old and old[k] != v]
    print(f"resuming run {job.run.name}" + (f"; changed: {', '.join(changed)}" if changed else ""))


def _check_same_attributes(job: TrainJob) -> None:
    """A conditioned model's y columns mean the attributes it was trained with, in that order: resuming on data
    that lists other attributes (or the same in another order) would load and silently mean other things.
    Checked here, before the run's config.yaml is rewritten (the loop checks again, for remote runs)."""
    if job.cfg.model.condition != "attributes" or job.run.remote:
        return
    newest = find_checkpoints(job.run.local_dir)
    if not newest:
        return
    saved = list(load_state(newest[-1], mmap=True).get("attributes", []))  # the tensors stay on disk
    if saved != list(job.data.attributes):
        raise ConfigError(f"{newest[-1]}: the checkpoint is conditioned on attributes {saved}, but "
                          f"{job.data.where} has {list(job.data.attributes)}; resume with the data it was trained on")


def record_run(job: TrainJob) -> None:
    """Mark the run directory as ours and save the resolved config (after every check has passed)."""
    try:
        job.run.mark_ours()
        job.run.write_text("config.yaml", yaml.safe_dump(config_to_dict(job.cfg), sort_keys=False))
    except OSError as err:
        raise TrainingError(f"{job.run.where()}: the run's config could not be written "
                            f"({err.strerror or err})") from None
