"""Typed configuration of a run: one small dataclass per component, grouped in :class:`Config`.

Field names are the keys users override on the command line (``train.steps=500``). Units are in the
comments; constraints live in :mod:`vaegan_dist.config.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SUPPORTED_IMAGE_SIZES: tuple[int, ...] = (32, 64, 128)
# The discriminator's stride-2 convolutions per image size (vaegan_dist.model.architecture's table; a unit test
# holds the two together). Here so that validating model.dis_l_side does not import torch with the model.
DISCRIMINATOR_STAGES: dict[int, int] = {32: 3, 64: 3, 128: 4}


def dis_l_sides(image_size: int) -> tuple[int, ...]:
    """The output sides of the discriminator's stride-2 convolutions: where Dis_l may be taken."""
    return tuple(image_size >> (i + 1) for i in range(DISCRIMINATOR_STAGES[image_size]))


@dataclass
class DataConfig:
    # Shard directory or manifest (local path, http(s)://, s3://, gs://), or a shard list such as
    # /data/train-{000000..000099}.tar or pipe:...; "" = the built-in procedural faces.
    source: str = ""
    split: str = "train"  # split of the manifest to train on
    image_size: int = 64  # pixels, square; 32, 64 or 128
    batch_size: int = 64  # images per worker per step
    shuffle_buffer: int = 1000  # samples held in each DataLoader worker's shuffle buffer
    loader_workers: int = 2  # DataLoader processes per training worker (0 = decode in the training process)
    hflip: bool = True  # random horizontal flips
    augment: bool = False  # the released code's small translation/scale/rotation, gamma and HSV jitter
    synthetic_samples: int = 20000  # size of the built-in data set when source is ""
    cache_dir: str = "~/vaegan-dist/data"  # where the built-in data set is written once


@dataclass
class ModelConfig:
    # vaegan: the paper's model; the baselines of its comparison, with the same networks: vae (pixel-wise
    # Gaussian reconstruction error, no discriminator), vae_disl (reconstruction error in Dis_l of a GAN
    # discriminator, no GAN gradient to the decoder), gan (the decoder as a generator from p(z), no encoder).
    kind: Literal["vaegan", "vae", "vae_disl", "gan"] = "vaegan"
    latent_dim: int = 128
    encoder_fc: int = 2048  # paper: 2048, released code: 1024
    discriminator_fc: int = 512
    width: float = 1.0  # multiplies every convolution's channel count (the smoke preset narrows it)
    sync_batchnorm: bool = False  # SyncBatchNorm across workers instead of per-replica statistics
    # attributes: every network the kind has also gets the image's attribute vector y (the paper's section
    # 4.2), so that Dec(z, y) generates faces to order; the attributes are the data set's.
    condition: Literal["none", "attributes"] = "none"
    # Spectral normalisation (Miyato et al. 2018) of every discriminator convolution and linear layer: each
    # weight is divided by its largest singular value, so the discriminator is 1-Lipschitz per layer before
    # batch norm. Dis_l stays the output of the same convolution before its batch norm, but that output is now
    # W x / sigma(W): the similarity metric keeps its directions and loses its scale (gamma weighs a smaller
    # L_llike). Changes the checkpoint's keys, so a rerun cannot switch it.
    spectral_norm: bool = False
    # batch: the paper's discriminator (batch norm after every stride-2 conv and the FC). none: no batch norm
    # in the discriminator (a bias instead), as in R1-regularised GANs (StyleGAN2): a logit then depends on its
    # own image only, not on the real/fake mix of its batch. Dis_l stays the same convolution's output. Changes
    # the checkpoint's keys, so a rerun cannot switch it.
    discriminator_norm: Literal["batch", "none"] = "batch"
    # batch: the paper's encoder and decoder (batch norm after every conv and FC but the heads and the RGB
    # layer). none: no batch norm in either (a bias instead). A lever measured at 64 px (bench/RESULTS.md, "The
    # paper's resolution"); changes the checkpoint's keys, so a rerun cannot switch it.
    autoencoder_norm: Literal["batch", "none"] = "batch"
    # The spatial side of Dis_l, the discriminator convolution whose output is the similarity metric: 8 is the
    # paper's at every size (8 image pixels per feature at 64 px, 4 at 32 px). 16 at 64 px takes the 3rd conv
    # instead, 4 pixels per feature as at 32 px (bench/RESULTS.md, "The paper's resolution"). The weights are the
    # same, so a rerun may switch it; L_llike then measures another layer.
    dis_l_side: int = 8


@dataclass
class ObjectiveConfig:
    gamma: float = 1e-6  # weight of L_llike against the GAN loss in the decoder's update
    # Which decoder outputs the discriminator sees as fakes: the paper uses Dec(z_p) and Dec(Enc(x)),
    # the released code only Dec(z_p).
    fakes: Literal["prior_and_reconstruction", "prior"] = "prior_and_reconstruction"
    # minimax: the decoder minimises -L_GAN (saturating, paper and code); non_saturating: -log D(fake).
    generator_loss: Literal["minimax", "non_saturating"] = "minimax"
    # Weight of the GAN term in the decoder's loss: 1 (paper) or 1 - gamma (released code).
    decoder_gan_weight: Literal["one", "one_minus_gamma"] = "one"
    # Discriminator loss: sum of the real and fake terms (paper) or 0.5 each (released code).
    discriminator_weighting: Literal["sum", "half"] = "sum"
    # Released code's balancing: skip Dis / Dec steps when either is far ahead.
    equilibrium: bool = False
    equilibrium_value: float = 0.68
    equilibrium_margin: float = 0.35
    # Training recipe options beyond the paper (off in the paper presets; bench/time_to_quality.py judges them).
    # Warm-up: before this step the decoder learns gamma * L_llike alone and the discriminator does not step
    # (Dis_l is then the randomly initialised discriminator's features); the GAN game starts at gan_start.
    gan_start: int = 0
    # Adaptive gamma (taming-transformers' calculate_adaptive_weight): the decoder learns
    # L_llike + lambda * adaptive_weight * L_gen with lambda = ||grad_W L_llike|| / (||grad_W L_gen|| + 1e-4)
    # at the decoder's last layer W, clamped to [0, 1e4], detached, in fp32; objective.gamma is then unused.
    # With several workers both gradients are averaged over the workers first: lambda is the whole batch's.
    adaptive_gamma: bool = False
    adaptive_weight: float = 1.0
    # R1 (Mescheder et al. 2018) on real images, lazily (StyleGAN2): every r1_every steps the discriminator's
    # loss gets r1_every * r1_gamma / 2 * E||grad_x D(x)||^2. It penalises the discriminator's logit only;
    # Dis_l, a layer before the logit, is shaped by it indirectly (smoother features around real images).
    # On a step the equilibrium trick pauses the discriminator, its whole update is dropped, R1's part with it:
    # R1's effective weight falls with the pause rate, which is highest when the discriminator is ahead.
    r1_gamma: float = 0.0  # 0 = off
    r1_every: int = 16
    # L_llike also in pixel space: L_llike = 1/2 ||Dis_l(x~) - Dis_l(x)||^2 + pixel_weight * 1/2 ||x~ - x||^2,
    # trained as L_llike is (Enc with weight 1, Dec with gamma). Dis_l starts out as a random discriminator's
    # features, in which a reconstruction is hard to learn; pixels are informative from the first step.
    pixel_weight: float = 0.0
    # The weight of L_prior (the KL) in the encoder's loss: 1 is the paper's (and the ELBO's). Below 1 the code
    # may spend more nats on what the reconstruction terms reward little; the decoder still samples from
    # N(0, I). Measured on the built-in faces (bench/latent_probe.py; bench/RESULTS.md, "The paper's
    # resolution"): 0.1 and 0.01 do not make the code carry Smiling or Eyeglasses.
    kl_weight: float = 1.0


@dataclass
class OptimConfig:
    lr_encoder: float = 3e-4
    lr_decoder: float = 3e-4
    lr_discriminator: float = 3e-4
    rms_decay: float = 0.9  # RMSProp's moving-average coefficient (torch's alpha)
    eps: float = 1e-8
    weight_decay: float = 1e-5  # L2 on conv/linear weights, except the mu/logvar heads
    # constant (paper) or the released code's lr(t) = lr - (t/T)^power * (lr - lr * final_ratio)
    schedule: Literal["constant", "power_anneal"] = "constant"
    lr_final_ratio: float = 5e-4
    anneal_power: float = 0.75
    grad_clip: float = 0.0  # max global gradient norm per sub-network; 0 = off
    # rmsprop (paper and code: rms_decay, eps) or adam (the DCGAN convention: adam_beta1 0.5, adam_beta2 0.999)
    algorithm: Literal["rmsprop", "adam"] = "rmsprop"
    adam_beta1: float = 0.5
    adam_beta2: float = 0.999
    # An exponential moving average of the encoder's and decoder's weights (and batch-norm statistics), used for
    # grids, evaluation, sample, reconstruct, edit and the report; 0 = off. StyleGAN2-ADA's convention: the
    # half-life in thousands of images seen by all workers together, shortened to ema_rampup x the images seen
    # so far early in training (so a short run is not an average of its random start).
    ema_halflife_kimg: float = 0.0
    ema_rampup: float = 0.05  # 0 = no ramp-up


@dataclass
class TrainConfig:
    steps: int = 62500  # optimiser steps (the paper: ~62,500 at batch 64)
    workers: str = "2"  # Ray Train workers: N, or MIN-MAX for elastic training; 0 = in this process without Ray
    cpus_per_worker: float = 1.0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # What the step computes in (weights, optimiser state, losses and evaluation stay float32): auto = bf16
    # autocast on CUDA and on CPUs with native bf16 (AVX512_BF16, AMX), float32 elsewhere; fp32; bf16 (forced,
    # even where it is emulated and slow). See vaegan_dist.train.precision.
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    seed: int = 0
    log_every: int = 50  # steps between scalar logs and progress lines
    image_every: int = 500  # steps between sample / reconstruction grids
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    storage_path: str = "~/vaegan-dist/runs"  # runs live in storage_path/name
    name: str = ""  # "" = <preset>-<date>-<time>; rerun with the same name to resume
    max_failures: int = 0  # worker-group restarts from the last checkpoint (-1: unlimited)
    collective_timeout_s: int = 1800  # a hung collective becomes an error after this long
    start_timeout_s: int = 120  # how long Ray waits to place the worker group before one start attempt fails
    start_retries: int = 2  # start attempts after the first, then the job fails instead of waiting forever
    # A local storage_path with more than one node must be a shared mount (NFS): say so here, and every
    # node is checked to see it. URLs (s3://, gs://) need nothing.
    shared_storage: bool = False
    grid_size: int = 64  # images in each TensorBoard grid
    # Steps between evaluations (eval/* in TensorBoard and in Ray's reported metrics): fd, fd_recon,
    # attr_agreement, sharpness_ratio, precision, recall on eval_samples held-out images; 0 = off.
    eval_every: int = 2500
    eval_samples: int = 1000
    # An evaluator file from `vaegan-dist evaluator train`; "" = the cached one for this data (trained
    # automatically for the built-in faces; for other data without one, evaluation is off with a warning).
    evaluator: str = ""

    def worker_range(self) -> tuple[int, int]:
        """(min, max) Ray Train workers; equal for a fixed-size group."""
        low, _, high = self.workers.partition("-")
        return int(low), int(high or low)


@dataclass
class RayConfig:
    # "" = the cluster in $RAY_ADDRESS (set under `ray job submit`) or else a new local one;
    # "auto" = the cluster started on this machine with `ray start`; or HOST:PORT of its GCS.
    address: str = ""


@dataclass
class Config:
    preset: str = "celeba64"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    ray: RayConfig = field(default_factory=RayConfig)
