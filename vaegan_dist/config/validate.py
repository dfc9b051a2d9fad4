"""Value constraints that types alone cannot express. Each failure names its key and value."""

from __future__ import annotations

import re

from vaegan_dist.config.errors import ConfigError
from vaegan_dist.config.schema import SUPPORTED_IMAGE_SIZES, Config, dis_l_sides


def _require(ok: bool, key: str, value: object, why: str) -> None:
    if not ok:
        raise ConfigError(f"config key {key!r} {why}; got {value!r}")


def validate(cfg: Config) -> Config:
    d, m, o, p, t = cfg.data, cfg.model, cfg.objective, cfg.optim, cfg.train
    _require(d.image_size in SUPPORTED_IMAGE_SIZES, "data.image_size", d.image_size,
             f"must be one of {', '.join(map(str, SUPPORTED_IMAGE_SIZES))} "
             "(the model has no architecture for other sizes)")
    _require(d.batch_size >= 2, "data.batch_size", d.batch_size,
             "must be at least 2 (batch normalisation needs a batch)")
    _require(d.shuffle_buffer >= 0, "data.shuffle_buffer", d.shuffle_buffer, "must be >= 0")
    _require(d.loader_workers >= 0, "data.loader_workers", d.loader_workers, "must be >= 0")
    _require(d.synthetic_samples >= d.batch_size, "data.synthetic_samples", d.synthetic_samples,
             f"must be at least data.batch_size ({d.batch_size})")
    _require(bool(d.split), "data.split", d.split, "must name a split (train, valid or test)")

    # Upper bounds too: a checkpoint's config decides how large a model load_model builds before any
    # weight is read, and a crafted one must not be able to ask for all the memory there is.
    for key in ("latent_dim", "encoder_fc", "discriminator_fc"):
        _require(1 <= getattr(m, key) <= 65536, f"model.{key}", getattr(m, key), "must be in [1, 65536]")
    _require(0 < m.width <= 8, "model.width", m.width, "must be in (0, 8]")
    sides = dis_l_sides(d.image_size)  # data.image_size is a supported one (checked above)
    _require(m.dis_l_side in sides, "model.dis_l_side", m.dis_l_side,
             f"must be the output side of a discriminator convolution at data.image_size={d.image_size}: "
             f"one of {', '.join(map(str, sides))}")

    _require(o.gamma >= 0, "objective.gamma", o.gamma, "must be >= 0")
    _require(0 < o.equilibrium_value, "objective.equilibrium_value", o.equilibrium_value, "must be > 0")
    _require(0 <= o.equilibrium_margin < o.equilibrium_value, "objective.equilibrium_margin",
             o.equilibrium_margin, "must be in [0, objective.equilibrium_value)")

    _require(o.gan_start >= 0, "objective.gan_start", o.gan_start, "must be >= 0 (0 = the GAN game from the start)")
    _require(o.adaptive_weight > 0, "objective.adaptive_weight", o.adaptive_weight, "must be > 0")
    _require(not o.adaptive_gamma or m.kind == "vaegan", "objective.adaptive_gamma", o.adaptive_gamma,
             f"balances L_llike against the GAN term in the decoder, which only model.kind=vaegan has "
             f"(model.kind is {m.kind!r})")
    _require(o.gan_start == 0 or m.kind != "gan", "objective.gan_start", o.gan_start,
             "must be 0 for model.kind=gan (a plain GAN has nothing to learn before its game starts)")
    _require(o.r1_gamma >= 0, "objective.r1_gamma", o.r1_gamma, "must be >= 0 (0 = off)")
    _require(o.pixel_weight >= 0, "objective.pixel_weight", o.pixel_weight, "must be >= 0 (0 = off)")
    _require(o.kl_weight > 0, "objective.kl_weight", o.kl_weight,
             "must be > 0 (without the KL the codes leave the prior that samples are drawn from)")
    _require(o.r1_every >= 1, "objective.r1_every", o.r1_every, "must be >= 1 (1 = every step)")

    for key in ("lr_encoder", "lr_decoder", "lr_discriminator"):
        _require(getattr(p, key) > 0, f"optim.{key}", getattr(p, key), "must be > 0")
    _require(0 <= p.rms_decay < 1, "optim.rms_decay", p.rms_decay, "must be in [0, 1)")
    _require(p.eps > 0, "optim.eps", p.eps, "must be > 0")
    _require(p.weight_decay >= 0, "optim.weight_decay", p.weight_decay, "must be >= 0")
    _require(0 < p.lr_final_ratio <= 1, "optim.lr_final_ratio", p.lr_final_ratio, "must be in (0, 1]")
    _require(p.anneal_power > 0, "optim.anneal_power", p.anneal_power, "must be > 0")
    _require(p.grad_clip >= 0, "optim.grad_clip", p.grad_clip, "must be >= 0 (0 = off)")
    for key in ("adam_beta1", "adam_beta2"):
        _require(0 <= getattr(p, key) < 1, f"optim.{key}", getattr(p, key), "must be in [0, 1)")
    _require(p.ema_halflife_kimg >= 0, "optim.ema_halflife_kimg", p.ema_halflife_kimg, "must be >= 0 (0 = off)")
    _require(p.ema_rampup >= 0, "optim.ema_rampup", p.ema_rampup, "must be >= 0 (0 = no ramp-up)")

    _require(t.steps >= 1, "train.steps", t.steps, "must be >= 1")
    _require(re.fullmatch(r"\d+(-\d+)?", t.workers) is not None, "train.workers", t.workers,
             "must be N or MIN-MAX (0 = in this process, without Ray)")
    low, high = t.worker_range()
    _require(low <= high and (low > 0 or high == 0), "train.workers", t.workers,
             "must have 1 <= MIN <= MAX for elastic training")
    _require(t.start_timeout_s >= 1, "train.start_timeout_s", t.start_timeout_s, "must be >= 1")
    _require(t.start_retries >= 0, "train.start_retries", t.start_retries, "must be >= 0")
    _require(t.cpus_per_worker > 0, "train.cpus_per_worker", t.cpus_per_worker, "must be > 0")
    _require(t.eval_every >= 0, "train.eval_every", t.eval_every, "must be >= 0 (0 = off)")
    _require(8 <= t.eval_samples <= 20_000, "train.eval_samples", t.eval_samples, "must be in [8, 20000]")
    for key in ("log_every", "image_every", "checkpoint_every", "keep_checkpoints", "grid_size"):
        _require(getattr(t, key) >= 1, f"train.{key}", getattr(t, key), "must be >= 1")
    _require(t.max_failures >= -1, "train.max_failures", t.max_failures, "must be >= 0, or -1 for unlimited")
    _require(t.collective_timeout_s >= 1, "train.collective_timeout_s", t.collective_timeout_s, "must be >= 1")
    _require(t.storage_path != "", "train.storage_path", t.storage_path, "must not be empty")
    _require("/" not in t.name and "\0" not in t.name and t.name not in (".", "..") and len(t.name.encode()) <= 200,
             "train.name", t.name, "must be a plain directory name (no '/', at most 200 bytes)")
    return cfg
