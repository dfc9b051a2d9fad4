"""Loss ops of the VAE/GAN, usable on their own.

Each op has one public function, a plain PyTorch reference that defines its meaning, and a fused Triton
implementation (forward kernels that also write the gradient, a backward that scales it) behind a
``torch.autograd.Function``. :mod:`vaegan_kernels.dispatch` picks Triton for CUDA tensors and the reference
elsewhere; ``python -m vaegan_kernels.check`` compiles every kernel for sm_80 and sm_90 without a GPU.

This package imports nothing from ``vaegan_dist`` so that it can be read, tested and benchmarked alone.

    >>> import torch, vaegan_kernels as kernels
    >>> f_rec, f_target = torch.zeros(4, 8), torch.ones(4, 8)
    >>> float(kernels.feature_nll(f_rec, f_target))  # 1/2 * 8 per sample, mean over the batch
    4.0
"""

from vaegan_kernels.dispatch import use_backend
from vaegan_kernels.feature_nll import feature_nll
from vaegan_kernels.reparameterize_kl import reparameterize_kl

__all__ = ["feature_nll", "reparameterize_kl", "use_backend"]
