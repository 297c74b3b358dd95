"""The power analysis: the stated minimum detectable escape is detected 80% of the time, by
simulation from the interval's own model; the seed counts are the fewest that reach it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sics.analysis import summaries
from sics.analysis.power import (
    Components,
    mde,
    power_table,
    seeds_needed,
    simulated_power,
    throughput,
)

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


def test_throughput_counts_rows_per_hour_by_tag_and_precision():
    rows = pd.DataFrame(dict(tag=["main", "main", "main", "matched"], seconds=[10.0, 30.0, 20.0, 36.0],
                             precision=["cpu-bf16", "cpu-bf16", None, "cpu-bf16"]))  # fmt: skip
    out = throughput(rows).set_index(["tag", "precision"])
    assert out.loc[("main", "cpu-bf16"), "rows"] == 2 and out.loc[("main", "cpu-bf16"), "median_s"] == 20.0
    assert out.loc[("main", "cpu-bf16"), "rows_per_hour"] == 180.0
    assert out.loc[("main", "not recorded"), "rows"] == 1 and out.loc[("matched", "cpu-bf16"), "total_h"] == 0.01


def test_the_seed_share_splits_the_escapes_variance_at_the_current_seeds():
    # two classes' seeds around the plateau: one seed-driven, one whose seeds differ little
    rng = np.random.default_rng(0)
    n_img, correct, rows = 2000, {}, []
    plateau = rng.random(n_img) < 0.5
    shared = rng.random(n_img) < 0.05  # images every seed of a class gets wrong or right alike
    for scorer, spread in (("logistic_raw", 0.3), ("tent_raw", 0.0)):
        for s in range(8):
            gain = ~plateau & (rng.random(n_img) < 0.02 + spread * rng.random())  # this seed's own escape
            flips = shared if spread == 0 else rng.random(n_img) < 0.05
            correct[f"{scorer}{s}"] = (plateau ^ flips) | gain
            rows.append(dict(scorer=scorer, kappa="2", sparsity=0.8, seed=s, allocation="block", recovery_steps=0,
                             tag="main", mask_hash=f"{scorer}{s}"))  # fmt: skip
    correct["m"] = plateau
    rows = pd.DataFrame([*rows, dict(scorer="magnitude", kappa="0", sparsity=0.8, seed=0, allocation="block",
                                     recovery_steps=0, tag="main", mask_hash="m")])  # fmt: skip
    keyed = {summaries.result_key(r): correct[r.mask_hash] for r in rows.itertuples()}
    table = power_table(rows, keyed, sparsities=(0.8,)).set_index("scorer")
    share = table["seed_share"]
    assert ((share > 0) & (share < 1)).all() and share["logistic_raw"] > 0.8 > 0.5 > share["tent_raw"]
