"""The power analysis: the stated minimum detectable escape is detected 80% of the time, by
simulation from the interval's own model; the seed counts are the fewest that reach it."""

from __future__ import annotations

import numpy as np
import pytest

from sics.analysis.power import Components, mde, seeds_needed, simulated_power

REPS = 10_000  # Monte Carlo SD of a power near 0.8: 0.004; the check allows 3 of them


@pytest.mark.parametrize(("seed_sd", "image_se"), [(0.5, 0.3), (4.0, 0.2)])
@pytest.mark.parametrize("n", [3, 5, 20])
@pytest.mark.parametrize("family", [1, 5])
def test_the_minimum_detectable_escape_is_detected_with_the_stated_power(seed_sd, image_se, n, family):
    comp = Components(seed_sd**2, image_se**2)
    alpha = 0.05 / family
    effect = mde(comp, n, alpha)
    got = simulated_power(comp, n, effect, alpha, reps=REPS, seed=n)
    assert got >= 0.80 - 3 * 0.004, (got, effect)
    # and not wildly conservative: a tenth less effect is detected less often than 80%
    assert simulated_power(comp, n, 0.9 * effect, alpha, reps=REPS, seed=n + 1) < 0.80


def test_seeds_needed_is_the_fewest_that_reach_the_effect():
    comp = Components(3.0**2, 0.25**2)
    for effect, alpha in ((2.6, 0.01), (6.6, 0.05 / 3), (1.0, 0.05)):
        n = seeds_needed(comp, effect, alpha)
        assert n is not None and mde(comp, n, alpha) <= effect < mde(comp, n - 1, alpha)
    assert seeds_needed(comp, 0.0) is None


def test_equivalence_is_unreachable_once_the_shared_images_alone_are_too_wide():
    # as n grows, MDE -> (z_0.975 + z_0.8)·√C: 2.80 × 0.2 = 0.56 > a 0.5 margin
    assert seeds_needed(Components(1.0, 0.2**2), 0.5) is None
    n = seeds_needed(Components(1.0, 0.1**2), 0.5)
    assert n is not None and 2.8 * np.sqrt(1.0 / n + 0.01) < 0.5 + 0.1


def test_degenerate_components_give_an_answer_not_an_error():
    assert mde(Components(0.0, 0.0), 2) == 0.0 and seeds_needed(Components(0.0, 0.0), 2.6) == 2
    assert np.isnan(mde(Components(float("nan"), 0.1), 5)) and np.isnan(mde(Components(1.0, 0.1), 1))
    assert mde(Components(0.0, 0.04), 2) > 0  # images only: the normal test
