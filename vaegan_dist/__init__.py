"""vaegan-dist: the VAE/GAN of Larsen et al. (ICML 2016) trained at cluster scale.

Data flow (one sub-package each): ``config`` -> ``data`` (shards, streaming) -> ``model`` ->
``objectives`` (losses from ``kernels``) -> ``train`` (per-worker loop under Ray Train) -> ``cli``.
"""

__version__ = "0.1.0"
