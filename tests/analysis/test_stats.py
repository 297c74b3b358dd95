import numpy as np
import pytest

from sics.analysis.simulate import expand_patterns, paired_from_patterns, simulate_paired
from sics.analysis.stats import _paired_from_diff, holm, mean_ci, paired_escape


def test_identical_predictions_give_zero_and_an_interval_containing_zero():
    rng = np.random.default_rng(0)
    ref = rng.random(2000) < 0.6
    for r in (paired_escape(np.stack([ref, ref, ref]), ref), paired_escape(ref, ref)):
        assert r.mean == 0 and r.low == 0 == r.high and r.p_value == 1.0 and not r.significant


def test_a_planted_difference_is_detected():
    rng = np.random.default_rng(1)
    ref = rng.random(5000) < 0.6
    better = ref.copy()
    flip = np.flatnonzero(~ref)[:250]  # 250 more correct images: +5 points
    better[flip] = True
    r = paired_escape(better, ref)
    assert r.mean == pytest.approx(5.0)
    assert r.significant and r.low > 3.5 and r.high < 6.5 and r.p_value < 0.01
    worse = paired_escape(ref, better)
    assert worse.high < 0


def test_noise_without_a_difference_is_not_called_significant():
    rng = np.random.default_rng(2)
    ref = rng.random(3000) < 0.6
    other = ref.copy()
    swap = rng.choice(3000, 200, replace=False)
    other[swap] = ~other[swap]  # as many gained as lost, on average
    r = paired_escape(other, ref)
    assert r.low < r.mean < r.high and r.low <= 0.5 and r.high >= -0.5


def test_seed_variation_widens_the_interval():
    rng = np.random.default_rng(3)
    ref = rng.random(4000) < 0.5
    seeds = []
    for shift in (0, 60, 120):  # seeds that disagree with each other
        s = ref.copy()
        s[np.flatnonzero(~ref)[:shift]] = True
        seeds.append(s)
    one = paired_escape(seeds[1], ref)
    many = paired_escape(np.stack(seeds), ref)
    assert many.mean == pytest.approx(one.mean)
    assert (many.high - many.low) > (one.high - one.low)


def test_mean_ci_matches_the_t_interval():
    m, lo, hi = mean_ci([1.0, 2.0, 3.0])
    assert m == 2.0 and hi - m == pytest.approx(4.302652729911275 * 1.0 / np.sqrt(3))
    assert np.isnan(mean_ci([5.0])[1])


def test_mismatched_images_are_refused():
    with pytest.raises(ValueError, match="same images"):
        paired_escape(np.ones((2, 10)), np.ones(9))


def test_one_deterministic_seed_is_the_paired_z_interval():
    ref = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=bool)
    cor = np.array([1, 1, 1, 0, 1, 0, 1, 1], dtype=bool)
    # D/100 = [0, 1, 0, -1, 1, 0, 0, 1]: mean 0.25, var (ddof 1) 3.5/7 = 0.5, se √(0.5/8) = 0.25
    r = paired_escape(cor, ref)
    assert r.mean == pytest.approx(25.0) and r.se == pytest.approx(25.0) and r.df == np.inf
    assert (r.low, r.high) == pytest.approx((25 - 1.959963984540 * 25, 25 + 1.959963984540 * 25))
    assert r.p_value == pytest.approx(0.31731050786291)  # 2·(1 − Φ(1))
    assert paired_escape(cor[None], ref, stochastic=False) == r


def test_one_seed_of_a_random_scorer_has_no_interval():
    ref = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=bool)
    cor = np.array([1, 1, 1, 1, 1, 1, 1, 1], dtype=bool)
    r = paired_escape(cor, ref, stochastic=True)
    assert r.mean == pytest.approx(50.0)
    assert np.isnan(r.low) and np.isnan(r.high) and np.isnan(r.p_value) and np.isnan(r.se)
    assert not r.significant and all(np.isnan(r.interval(0.99)))


def test_without_image_noise_it_is_the_t_interval_over_seeds():
    # each seed's difference is the same on every image: no image variance, so C = 0
    d = np.repeat(np.array([[1.0], [2.0], [3.0]]), 50, axis=1)
    r = _paired_from_diff(d)
    assert (r.mean, r.low, r.high) == pytest.approx(mean_ci([1.0, 2.0, 3.0]))
    assert r.df == pytest.approx(2.0) and r.se_image == 0


def test_public_function_and_diff_and_pattern_paths_agree():
    rng = np.random.default_rng(4)
    correct, ref = rng.random((3, 500)) < 0.7, rng.random(500) < 0.6
    assert paired_escape(correct, ref) == _paired_from_diff((correct * 1.0 - ref) * 100)
    pat, counts, _ = simulate_paired(rng, 4, 2.0, 1.0, reps=3)
    batch = paired_from_patterns(pat, counts)
    for j in range(3):
        one = _paired_from_diff(expand_patterns(pat, counts[j]))
        for k in ("mean", "low", "high", "se", "p_value"):
            assert batch[k][j] == pytest.approx(getattr(one, k), rel=1e-9, abs=1e-12)


def test_interval_at_another_level():
    rng = np.random.default_rng(5)
    pat, counts, _ = simulate_paired(rng, 3, 2.0, 1.0)
    r = _paired_from_diff(expand_patterns(pat, counts[0]))
    assert r.interval(0.95) == pytest.approx((r.low, r.high))
    lo99, hi99 = r.interval(0.99)
    assert lo99 < r.low and hi99 > r.high  # a higher level is wider
    assert r.interval(0.90)[1] < r.high
    assert r.upper(0.975) == pytest.approx(r.high)
    assert (r.p_value < 0.05) == r.significant


def test_holm_on_a_worked_example():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → max(0.06, 0.04)
    p = [0.01, np.nan, 0.04, 0.03, 0.005]
    adj = holm(p)
    assert np.isnan(adj[1])
    np.testing.assert_allclose(adj[[0, 2, 3, 4]], [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.7, 0.6]), [1.0, 1.0])  # capped at 1
    np.testing.assert_allclose(holm([0.02]), [0.02])
    assert holm([]).shape == (0,)


def _coverage(r, truth):
    return float(np.mean((r["low"] <= truth) & (truth <= r["high"])))


# Cells of tools/interval_coverage.py: image SE ≈ 0.45 pt, seed SD 0/2/5 points, 3 or 5 seeds; the old
# bootstrap covered 70–89% at seed SD 2–5 points.
@pytest.mark.parametrize("n_seeds", [3, 5])
@pytest.mark.parametrize("seed_sd", [0.0, 2.0, 5.0])
def test_the_interval_covers_the_true_escape(n_seeds, seed_sd):
    rng = np.random.default_rng(100 + n_seeds * 10 + int(seed_sd))
    pat, counts, truth = simulate_paired(rng, n_seeds, seed_sd, 1.0, reps=2000)
    r = paired_from_patterns(pat, counts)
    assert 0.93 <= _coverage(r, truth) <= 0.99  # binomial SE of the estimate ≈ 0.5%
    assert np.array_equal(r["p_value"] < 0.05, (r["low"] > 0) | (r["high"] < 0))


def test_the_coverage_check_catches_an_anti_conservative_interval():
    rng = np.random.default_rng(7)
    pat, counts, truth = simulate_paired(rng, 3, 5.0, 1.0, reps=2000)
    r = paired_from_patterns(pat, counts)
    normal = dict(low=r["mean"] - 1.96 * r["se"], high=r["mean"] + 1.96 * r["se"])
    assert _coverage(normal, truth) < 0.90  # a normal quantile ignores that there are 3 seeds


@pytest.mark.parametrize("seed_sd", [0.0, 1.0])
def test_power_for_a_three_point_escape_with_five_seeds(seed_sd):
    # at seed SD 2 points the power is about 68% (tools/interval_coverage.py): not asserted
    rng = np.random.default_rng(200 + int(seed_sd))
    pat, counts, truth = simulate_paired(rng, 5, seed_sd, 3.0, reps=2000)
    assert truth == pytest.approx(3.0)
    assert np.mean(paired_from_patterns(pat, counts)["low"] > 0) >= 0.80


def _mixture(rng, reps: int, n: int, share: float = 0.1, off: float = 10.0, image_se: float = 0.2):
    """Per-seed escapes: Normal(0, 1) seed effects, a share of seeds `off` points up (a few seeds
    gain a lot), and one shared image error per study."""
    a = rng.normal(0.0, 1.0, (reps, n)) + np.where(rng.random((reps, n)) < share, off, 0.0)
    return a + rng.normal(0.0, image_se, (reps, 1))


@pytest.mark.parametrize("n", [3, 5, 10, 20])
def test_the_means_interval_under_covers_a_skewed_mixture_and_the_medians_does_not(n):
    from sics.analysis.stats import _half_width, median_interval

    rng = np.random.default_rng(n)
    reps, share, off = 4000, 0.1, 10.0
    d = _mixture(rng, reps, n, share, off)
    mean_truth = share * off
    q = _half_width(d.var(1, ddof=1) / n, np.full(reps, 0.04), n - 1, 0.95)
    mean_cover = np.mean(np.abs(d.mean(1) - mean_truth) <= q)
    assert mean_cover < 0.92  # measured 0.76-0.88: the mean's interval cannot be trusted here
    # the median seed escape: the population median of Normal(0,1) + 10·Bernoulli(0.1), by simulation
    big = rng.normal(0.0, 1.0, 2_000_000) + np.where(rng.random(2_000_000) < share, off, 0.0)
    med_truth = float(np.median(big))
    got = np.array([median_interval(row, 0.2) for row in d])
    cover = np.mean((got[:, 1] <= med_truth) & (med_truth <= got[:, 2]))
    nominal = 0.95 if n >= 6 else 1 - 2.0 ** (1 - n)
    assert cover >= nominal - 0.01, (cover, nominal)
