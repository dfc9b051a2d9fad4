"""The metrics, as functions of features and images. Each says what it measures and which way is better.

Written here rather than taken from a library, in float64 and exactly: torchmetrics keeps its Frechet
distance private to its Inception wrapper and has no precision/recall; piq's ``FID`` takes the matrix square
root of the non-symmetric product by Newton-Schulz iteration (approximate), and its ``PR`` compares the
real-fake distances with the real radii in the recall test where Kynkaanniemi et al. use the fake radii.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp_min(0).sqrt()) @ vectors.T


def gaussian_frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor,
                              sigma2: torch.Tensor) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2): the squared 2-Wasserstein distance between
    two Gaussians. The inner root is of a symmetric PSD matrix, so eigh gives it exactly."""
    mu1, sigma1, mu2, sigma2 = (t.double() for t in (mu1, sigma1, mu2, sigma2))
    root1 = _psd_sqrt(sigma1)
    cross = torch.linalg.eigvalsh(root1 @ sigma2 @ root1).clamp_min(0).sqrt().sum()
    return float((mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * cross)


def mean_and_covariance(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f = features.double()
    return f.mean(0), torch.cov(f.T)


def frechet_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """fd / fd_recon / fid: the Frechet distance between Gaussians fitted to two feature sets [N, D]. Lower is
    better; 0 when both have the same mean and covariance. Biased upwards for small N: compare values
    computed with the same N."""
    return gaussian_frechet_distance(*mean_and_covariance(real), *mean_and_covariance(fake))


# Kernel entries (float64) kid computes once for the whole sets, rather than per subset: 3 x 2000^2 entries (96 MB)
# cost 6 GFLOP against the subsets' 100 x 3 x 1000^2 x 256 x 2 = 154 GFLOP, which took 3.3 s of one core at 2000
# held-out images, more than generating and scoring the samples (bench/RESULTS.md, "Evaluation on every rank").
MAX_KERNEL_ENTRIES = 3 * 4096**2


def _cubic_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a @ b.T / a.shape[1] + 1) ** 3


def _kid_subset_by_subset(real, fake, picks, m) -> torch.Tensor:
    estimates = []
    for rows, cols in picks:
        x, y = real[rows.to(real.device)], fake[cols.to(fake.device)]
        k_xx, k_yy, k_xy = _cubic_kernel(x, x), _cubic_kernel(y, y), _cubic_kernel(x, y)
        within = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()) / (m * (m - 1))
        estimates.append(within - 2 * k_xy.mean())
    return torch.stack(estimates)


def _kid_from_whole_kernels(real, fake, picks, m) -> torch.Tensor:
    """The same estimates from the kernels of the whole sets: a subset's sum over its m x m block is s^T K s for its
    0/1 indicator vector s, all subsets at once."""
    k_rr, k_ff, k_rf = _cubic_kernel(real, real), _cubic_kernel(fake, fake), _cubic_kernel(real, fake)
    sx = torch.zeros(len(picks), len(real), dtype=real.dtype)
    sy = torch.zeros(len(picks), len(fake), dtype=fake.dtype)
    for i, (rows, cols) in enumerate(picks):
        sx[i, rows], sy[i, cols] = 1.0, 1.0
    sx, sy = sx.to(real.device), sy.to(fake.device)  # the features may be on a GPU; the picks are drawn on the CPU
    within_x = ((sx @ k_rr) * sx).sum(1) - sx @ k_rr.diagonal()
    within_y = ((sy @ k_ff) * sy).sum(1) - sy @ k_ff.diagonal()
    cross = ((sx @ k_rf) * sy).sum(1) / (m * m)
    return (within_x + within_y) / (m * (m - 1)) - 2 * cross


def kernel_distance(real: torch.Tensor, fake: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
                    seed: int = 0, max_kernel_entries: int = MAX_KERNEL_ENTRIES) -> tuple[float, float]:
    """kid (Binkowski et al. 2018): the unbiased estimate of the squared MMD between two feature sets [N, D]
    with the cubic polynomial kernel k(a, b) = (a.b / D + 1)^3, averaged over ``subsets`` random subsets of
    ``subset_size`` points from each set (without replacement; at most half of the smaller set, so that the
    subsets differ and their spread means something); returns (mean, population standard deviation over
    subsets, as torchmetrics reports it). Lower is better; its expectation is 0 when both sets come from one
    distribution, at any N: unlike fd, it is not biased upwards for small N, which is why it stands beside fd
    at 400 held-out images.

    Written here, in float64, for the same reason as the Frechet distance: torchmetrics' KID lives inside its
    Inception wrapper and refuses sets smaller than its subset size."""
    if real.dim() != 2 or fake.dim() != 2 or real.shape[1] != fake.shape[1] or real.shape[1] == 0:
        raise ValueError(f"kid needs two feature sets [N, D] with the same D > 0; got {list(real.shape)} and "
                         f"{list(fake.shape)}")
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"kid needs subsets >= 1 and subset_size >= 2; got {subsets} and {subset_size}")
    real, fake = real.double(), fake.double()
    if not (torch.isfinite(real).all() and torch.isfinite(fake).all()):
        raise ValueError("kid: a feature is not finite (nan or inf)")
    m = min(subset_size, len(real) // 2, len(fake) // 2)
    if m < 2:
        raise ValueError(f"kid needs at least 4 points per set; got {len(real)} and {len(fake)}")
    generator = torch.Generator().manual_seed(seed)
    picks = [(torch.randperm(len(real), generator=generator)[:m], torch.randperm(len(fake), generator=generator)[:m])
             for _ in range(subsets)]
    whole = len(real) ** 2 + len(fake) ** 2 + len(real) * len(fake) <= max_kernel_entries
    values = (_kid_from_whole_kernels if whole else _kid_subset_by_subset)(real, fake, picks, m)
    # torchmetrics' convention: the population standard deviation over the subsets (not n - 1)
    return float(values.mean()), float(values.std(correction=0))


def _kth_neighbour_radius(features: torch.Tensor, k: int) -> torch.Tensor:
    distances = torch.cdist(features, features)
    return distances.topk(k + 1, dim=1, largest=False).values[:, k]  # index 0 is the point itself


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019). Each set's manifold is the union of balls
    around its points reaching their k-th nearest neighbour. precision: the fraction of fakes inside the
    real manifold (are samples realistic?); recall: the fraction of reals inside the fake manifold (is all
    of the data covered, or have modes collapsed?). Both in [0, 1], higher is better."""
    real, fake = real.double(), fake.double()
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} points per set")
    cross = torch.cdist(real, fake)  # [R, F]
    precision = (cross <= _kth_neighbour_radius(real, k)[:, None]).any(dim=0).double().mean()
    recall = (cross <= _kth_neighbour_radius(fake, k)[None, :]).any(dim=1).double().mean()
    return float(precision), float(recall)


LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])


def laplacian_variance(images: torch.Tensor) -> torch.Tensor:
    """Per image [N]: the variance of the 3x3 Laplacian of its luminance (images in [-1, 1]). Blur lowers it."""
    gray = (0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]).unsqueeze(1).float()
    return F.conv2d(gray, LAPLACIAN.to(gray.device).view(1, 1, 3, 3)).flatten(1).var(dim=1)


def sharpness_ratio(fake_laplacian_var: torch.Tensor, real_laplacian_var: torch.Tensor) -> float:
    """sharpness_ratio: mean Laplacian variance of samples over that of real images. 1 is as sharp as the
    data; below 1 is blurrier (the paper's complaint about VAEs), far above 1 is noise or artefacts."""
    return float(fake_laplacian_var.double().mean() / real_laplacian_var.double().mean().clamp_min(1e-12))


def attribute_agreement(logits_original: torch.Tensor, logits_reconstruction: torch.Tensor) -> float:
    """attr_agreement: the fraction of (image, attribute) pairs on which the evaluator predicts the same
    for the reconstruction as for the original. In [0, 1], higher is better; 1 for a perfect reconstruction."""
    return float(((logits_original > 0) == (logits_reconstruction > 0)).double().mean())


