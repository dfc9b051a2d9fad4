"""Loss ops of the VAE/GAN, usable on their own.

Each op has one public function whose plain PyTorch body defines its meaning. Step 3 of the roadmap adds
a fused Triton implementation of each behind the same signature (chosen for CUDA tensors); until then
every call runs the reference.

This package imports nothing from ``vaegan_dist`` so that it can be read, tested and benchmarked alone.

    >>> import torch, kernels
    >>> f_rec, f_target = torch.zeros(4, 8), torch.ones(4, 8)
    >>> float(kernels.feature_nll(f_rec, f_target))  # 1/2 * 8 per sample, mean over the batch
    4.0
"""

from kernels.feature_nll import feature_nll
from kernels.kl_normal import kl_normal
from kernels.reparameterize_kl import reparameterize_kl

__all__ = ["feature_nll", "kl_normal", "reparameterize_kl"]
