"""The one place that decides device, autocast dtype and collective backend.

GPU: CUDA, NCCL. CPU: gloo. The autocast dtype comes from ``train.precision`` (:mod:`vaegan_dist.train.precision`:
bf16 on CUDA and on CPUs with native bf16, float32 elsewhere). Both use the
channels-last layout for images and conv weights: cuDNN's tensor-core kernels and oneDNN's CPU kernels
are NHWC-native (on this CPU a discriminator step is ~25% faster, and no slower per image at large batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vaegan_dist.config.errors import ConfigError
from vaegan_dist.train.precision import Precision, resolve_precision


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    autocast_dtype: torch.dtype | None  # None = no autocast
    memory_format: torch.memory_format = torch.channels_last
    dtype: torch.dtype = torch.float32  # parameters and inputs; float64 only for exact comparisons in tests
    # How the equilibrium trick skips a paused network's optimiser step. On a GPU it is masked on the device
    # (train/optim.step_where), because reading the decision would stall the pipeline; on a CPU reading it costs
    # nothing and a plain branch saves the mask's copies of the weights and optimiser state: 13 ms of a ~435 ms
    # smoke step per worker in float32 (bench/masked_step.py), twice that share where bf16 halves the step.
    # Both end bit-for-bit in the same place (tests/unit/test_train_step.py).
    skips_on_host: bool = False

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                              enabled=self.autocast_dtype is not None)


def use_gpu(preference: str, gpus_available: float) -> bool:
    """Whether training workers should ask for GPUs: ``train.device`` and what the cluster (or machine) has."""
    if preference == "cuda":
        if gpus_available <= 0:
            raise ConfigError("config key 'train.device' is cuda but no GPU is available to this job; got 'cuda'")
        return True
    return preference == "auto" and gpus_available > 0


def collective_backend(gpu: bool) -> str:
    """torch.distributed's backend, which the launcher gives Ray Train."""
    return "nccl" if gpu else "gloo"


def runtime_for(gpu: bool, device: torch.device | None = None, precision: Precision = "auto") -> Runtime:
    """``precision`` is ``train.precision``; numeric tests that compare against float32 or float64 references
    pass "fp32", so that they compute the same on a CPU with native bf16."""
    device = (device or torch.device("cuda", torch.cuda.current_device())) if gpu else torch.device("cpu")
    return Runtime(device, resolve_precision(precision, device), skips_on_host=not gpu)
