"""The metrics against hand computations: closed-form Frechet distances of Gaussians, precision and recall
counted on constructed point sets, agreement and MSE of perfect and known reconstructions, sharpness of
images whose Laplacian is known."""

import math
import statistics

import pytest
import torch

from vaegan_dist.evaluate import metrics as m


def test_frechet_distance_of_diagonal_gaussians_by_hand():
    # |mu1 - mu2|^2 = 1 + 4; tr S1 + tr S2 = 5 + 13; 2 tr sqrt(S1 S2) = 2 (sqrt 4 + sqrt 36) = 16
    d = m.gaussian_frechet_distance(torch.zeros(2), torch.diag(torch.tensor([1.0, 4.0])),
                                    torch.tensor([1.0, 2.0]), torch.diag(torch.tensor([4.0, 9.0])))
    assert d == pytest.approx(5 + 18 - 16)


def test_frechet_distance_of_non_commuting_gaussians_by_the_2x2_trace_formula():
    # For a 2x2 PSD matrix M, tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)); here M = S1^1/2 S2 S1^1/2, so
    # tr M = tr(S1 S2) and det M = det S1 det S2: an expression with no matrix square root in it.
    s1 = torch.tensor([[2.0, 0.7], [0.7, 1.0]], dtype=torch.float64)
    s2 = torch.tensor([[1.0, -0.4], [-0.4, 3.0]], dtype=torch.float64)
    mu1, mu2 = torch.tensor([0.5, -1.0]), torch.tensor([0.0, 1.0])
    tr_sqrt = math.sqrt(float(torch.trace(s1 @ s2)) + 2 * math.sqrt(float(torch.det(s1) * torch.det(s2))))
    expected = float((mu1 - mu2).square().sum() + s1.trace() + s2.trace()) - 2 * tr_sqrt
    assert m.gaussian_frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)
    assert m.gaussian_frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-10)


def test_frechet_distance_of_samples_approaches_the_closed_form():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200_000, 2, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0])
    b = torch.randn(200_000, 2, generator=g, dtype=torch.float64) * torch.tensor([2.0, 3.0]) + torch.tensor([1.0, 2.0])
    assert m.frechet_distance(a, b) == pytest.approx(7.0, rel=0.02)  # the diagonal case above


def test_precision_and_recall_counted_on_points_on_a_line():
    line = lambda values: torch.tensor([[float(v), 0.0] for v in values])  # noqa: E731
    real = line(range(10))  # k=1: every real point's ball has radius 1
    assert m.precision_recall(real, real.clone(), k=1) == (1.0, 1.0)
    # Fakes cover only 0..4 (radius 1 each): all are realistic; the reals 0..5 are within a fake ball
    # (5 sits exactly on the ball of 4: the boundary counts), 6..9 are missed.
    precision, recall = m.precision_recall(real, line(range(5)), k=1)
    assert (precision, recall) == (1.0, 0.6)
    # Half of the fakes far away: half are unrealistic; they do not cover anything real either.
    precision, recall = m.precision_recall(real, line([0, 1, 2, 3, 4, 100, 101, 102, 103, 104]), k=1)
    assert (precision, recall) == (0.5, 0.6)
    assert m.precision_recall(real, line(range(100, 110)), k=1) == (0.0, 0.0)


def test_precision_recall_needs_more_points_than_neighbours():
    with pytest.raises(ValueError, match="needs more than 3 points"):
        m.precision_recall(torch.zeros(3, 2), torch.zeros(10, 2), k=3)


def test_a_perfect_reconstruction_agrees_everywhere():
    logits = torch.randn(5, 4)
    assert m.attribute_agreement(logits, logits.clone()) == 1.0


def test_agreement_by_hand():
    original = torch.tensor([[1.0, -1.0], [2.0, 3.0]])
    recon = torch.tensor([[0.5, 1.0], [-2.0, 0.1]])  # agrees on (0,0) and (1,1): 2 of 4
    assert m.attribute_agreement(original, recon) == 0.5


def test_laplacian_variance_by_hand_and_blur_lowers_sharpness():
    flat = torch.full((2, 3, 6, 6), 0.3)
    assert torch.all(m.laplacian_variance(flat) == 0)
    # A +-1 checkerboard (same in all channels, so luminance = the value): the Laplacian is -8 * centre, i.e.
    # +-8 in equal numbers over the 4x4 interior: variance 64 * 16 / 15 (unbiased).
    checker = (torch.arange(6)[:, None] + torch.arange(6)[None, :]) % 2 * 2.0 - 1
    images = checker.expand(1, 3, 6, 6)
    assert m.laplacian_variance(images).item() == pytest.approx(64 * 16 / 15, rel=1e-6)
    sharp = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    blurred = torch.nn.functional.avg_pool2d(sharp, 3, stride=1, padding=1)
    assert m.sharpness_ratio(m.laplacian_variance(blurred), m.laplacian_variance(sharp)) < 0.2
    assert m.sharpness_ratio(m.laplacian_variance(sharp), m.laplacian_variance(sharp)) == pytest.approx(1.0)


def test_kernel_distance_by_hand_on_four_points():
    """Five subsets of 2 of the 4 points of each set (half of each set, the most a subset may take), each
    recomputed by hand; the spread is the population standard deviation, torchmetrics' convention."""
    real = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    fake = torch.tensor([[0.0, 0.0], [1.0, 2.0], [2.0, 2.0], [0.0, 3.0]])

    def k(a, b):
        return (sum(x * y for x, y in zip(a, b)) / 2 + 1) ** 3

    # With subset_size 2 every subset is 2 random points of each set; recompute each one by hand.
    generator = torch.Generator().manual_seed(0)
    by_hand = []
    for _ in range(5):
        x = real[torch.randperm(4, generator=generator)[:2]].tolist()
        y = fake[torch.randperm(4, generator=generator)[:2]].tolist()
        within = (k(x[0], x[1]) + k(x[1], x[0]) + k(y[0], y[1]) + k(y[1], y[0])) / 2
        cross = sum(k(a, b) for a in x for b in y) / 4
        by_hand.append(within - 2 * cross)
    for whole in (m.MAX_KERNEL_ENTRIES, 0):  # the whole sets' kernels at once, and subset by subset
        mean, std = m.kernel_distance(real, fake, subsets=5, subset_size=2, seed=0, max_kernel_entries=whole)
        assert mean == pytest.approx(sum(by_hand) / 5)
        assert std == pytest.approx(statistics.pstdev(by_hand))
        assert std != pytest.approx(statistics.stdev(by_hand))  # n - 1 would be sqrt(5/4) times larger


def test_kernel_distance_from_the_whole_kernels_equals_subset_by_subset():
    g = torch.Generator().manual_seed(4)
    real, fake = torch.randn(300, 16, generator=g), torch.randn(250, 16, generator=g) * 1.3 + 0.2
    whole = m.kernel_distance(real, fake, subsets=20, subset_size=100, seed=3)
    each = m.kernel_distance(real, fake, subsets=20, subset_size=100, seed=3, max_kernel_entries=0)
    assert whole == pytest.approx(each, rel=1e-10)
    assert whole[0] > 0.01  # not two estimates of nothing


def test_kernel_distance_is_unbiased_where_the_frechet_distance_is_not():
    """Two samples of one Gaussian at N = 200: kid is ~0 (well inside its spread over subsets), while fd is
    clearly positive (its bias upwards at small N); a shifted Gaussian gives a kid far outside that spread."""
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(200, 16, generator=g), torch.randn(200, 16, generator=g)
    kid, kid_std = m.kernel_distance(a, b, subsets=200, subset_size=100)
    assert abs(kid) < 0.5 * kid_std
    assert m.frechet_distance(a, b) > 0.5
    shifted, _ = m.kernel_distance(a, b + 0.5, subsets=50, subset_size=100)
    assert shifted > 10 * kid_std


def test_kernel_distance_needs_four_points():
    with pytest.raises(ValueError, match="at least 4"):
        m.kernel_distance(torch.randn(3, 2), torch.randn(10, 2))


@pytest.mark.parametrize("real, fake, kwargs, message", [
    (torch.randn(10, 5), torch.randn(10, 7), {}, "same D > 0"),
    (torch.empty(10, 0), torch.empty(10, 0), {}, "same D > 0"),
    (torch.randn(10), torch.randn(10), {}, "same D > 0"),
    (torch.randn(10, 5), torch.randn(10, 5), {"subsets": 0}, "subsets >= 1"),
    (torch.randn(10, 5), torch.randn(10, 5), {"subset_size": 1}, "subset_size >= 2"),
    (torch.full((10, 5), float("nan")), torch.randn(10, 5), {}, "not finite"),
])
def test_kernel_distance_refuses_bad_input_naming_it(real, fake, kwargs, message):
    with pytest.raises(ValueError, match=message):
        m.kernel_distance(real, fake, **kwargs)


def test_every_metric_says_which_way_is_better_in_one_place():
    from vaegan_dist.evaluate import METRICS, better, better_note
    from vaegan_tune.sweep import SweepSettings

    assert {name: better(name) for name in ("fd", "kid", "fd_recon", "pixel_mse", "precision", "sharpness_ratio")} == {
        "fd": "lower", "kid": "lower", "fd_recon": "lower", "pixel_mse": "lower", "precision": "higher",
        "sharpness_ratio": "one"}
    assert all(better_note(name).endswith(("is better", "as sharp as the data")) for name in METRICS)
    modes = {name: SweepSettings("", "", metric=f"eval/{name}").resolved_mode() for name in ("fd", "recall")}
    assert modes == {"fd": "min", "recall": "max"}  # a sweep reads the same table


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bench/gpu_check.sh runs this there)")
def test_kernel_distance_of_features_on_a_gpu_equals_the_cpus():
    """Evaluation keeps the evaluator's features on its device: kid's subsets are drawn on the CPU and must meet
    them there (the whole-kernel form once built its indicator matrices on the CPU only)."""
    g = torch.Generator().manual_seed(4)
    real, fake = torch.randn(300, 16, generator=g), torch.randn(250, 16, generator=g) + 0.2
    on_cpu = m.kernel_distance(real, fake, subsets=20, subset_size=100, seed=3)
    for whole in (m.MAX_KERNEL_ENTRIES, 0):
        on_gpu = m.kernel_distance(real.cuda(), fake.cuda(), subsets=20, subset_size=100, seed=3,
                                   max_kernel_entries=whole)
        assert on_gpu == pytest.approx(on_cpu, rel=1e-9)
