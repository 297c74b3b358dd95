"""Seeds as a distribution: a seed escapes on its own by the exact paired test, with Holm over the
class's seeds; an outlier is more than 3 robust SDs from the median."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sics.analysis.seeds import per_seed, seed_shares


def study(gains: list[int], n: int = 2000, seed: int = 0):
    """A plateau and one class whose seed s fixes gains[s] images the plateau gets wrong (and
    breaks 20 others, so every seed differs)."""
    rng = np.random.default_rng(seed)
    ref = rng.random(n) < 0.6
    rows, correct = [dict(scorer="magnitude", kappa="0", sparsity=0.7, seed=0, mask_hash="m", recovery_steps=0,
                          allocation="block", tag="main")], {("m", 0, 0): ref}  # fmt: skip
    wrong, right = np.flatnonzero(~ref), np.flatnonzero(ref)
    for s, g in enumerate(gains):
        c = ref.copy()
        c[rng.choice(wrong, g, replace=False)] = True
        c[rng.choice(right, 20, replace=False)] = False
        rows.append(dict(scorer="tent_raw", kappa="2", sparsity=0.7, seed=s, mask_hash=f"t{s}", recovery_steps=0,
                         allocation="block", tag="main"))  # fmt: skip
        correct[(f"t{s}", 0, 0)] = c
    return pd.DataFrame(rows), correct


def test_each_seed_is_judged_by_its_own_paired_test_and_outliers_are_flagged():
    rows, correct = study([20, 21, 19, 22, 20, 18, 21, 300])  # one seed gains a lot, the rest nothing
    seeds = per_seed(rows, correct)
    assert len(seeds) == 8 and np.allclose(seeds["escape"], (np.array([20, 21, 19, 22, 20, 18, 21, 300]) - 20) / 20)
    assert seeds["escapes"].tolist() == [False] * 7 + [True]
    assert seeds["outlier"].tolist() == [False] * 7 + [True]
    share = seed_shares(seeds).iloc[0]
    assert share["escaping"] == 1 and share["share"] == 1 / 8 and share["outliers"] == "7"
    assert share["mean"] > 1.5 and abs(share["median"]) < 0.05  # the mean hides that one seed carries it


def test_holm_over_the_seeds_keeps_a_borderline_seed_from_escaping_alone():
    rows, correct = study([20, 20, 20, 20, 20, 20, 20, 62])  # one seed at p ≈ 0.004 alone
    seeds = per_seed(rows, correct)
    last = seeds.iloc[-1]
    assert last["p"] < 0.01 and last["p_holm"] > last["p"]
    assert last["escapes"] == (last["p_holm"] < 0.05)
