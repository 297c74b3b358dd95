import numpy as np
import pytest

from sics.stats import mean_ci, paired_escape


def test_identical_predictions_give_zero_and_an_interval_containing_zero():
    rng = np.random.default_rng(0)
    ref = rng.random(2000) < 0.6
    r = paired_escape(np.stack([ref, ref, ref]), ref)
    assert r.mean == 0 and r.low <= 0 <= r.high and r.p_value == 1.0 and not r.significant


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
