"""The criteria study's rules on constructed summaries and rows with a known answer (no model
needed): C1's measured part and C7, one test per outcome; the fine grid never enters a verdict;
the adaptive selector's paired comparison."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sics.analysis import criteria as crit
from sics.analysis.stats import holm

MAIN = (0.5, 0.6, 0.7, 0.8)
KAPPA0 = ("magnitude", "magnitude_sq", "log_magnitude")


def summary(diffs: dict, half: float = 0.3, grid=MAIN) -> pd.DataFrame:
    """diffs: {scorer: difference from magnitude (points)} at every S of `grid`, interval ± half
    (normal, so p follows); the κ=0 scorers share magnitude's mask, so C1 holds by construction."""
    se = half / 1.959963984540054
    rows = []
    for S in grid:
        for scorer in (*KAPPA0, *diffs):
            e = diffs.get(scorer, 0.0)
            rows.append(dict(scorer=scorer, kappa="0" if scorer in KAPPA0 else "criterion", sparsity=S,
                             allocation="block", recovery_steps=0, acc=50.0 + e, plateau=50.0, escape=e,
                             escape_low=e - half, escape_high=e + half,
                             escape_p=1.0 if scorer in KAPPA0 else float(2 * sps.norm.sf(abs(e) / se)),
                             escape_se_seed=0.0, escape_se_image=se, n_seeds=5,
                             mask_hash="m" if scorer in KAPPA0 else scorer))  # fmt: skip
    return pd.DataFrame(rows)


C1 = ("l1_magnitude", "fc1_norm", "fc2_norm", "fpgm")


def verdicts(s: pd.DataFrame, names=C1, sparsities=None) -> dict:
    led = crit.ledger(s, names, C1, margin=0.5, sparsities=sparsities)
    return dict(zip(led["claim"], led["verdict"]))


def test_c1_measured_is_supported_when_every_interval_lies_within_the_margin():
    assert verdicts(summary({n: 0.1 for n in C1}))["C1"] == "supported"


def test_c1_measured_is_not_supported_when_one_differs_beyond_the_margin():
    led = crit.ledger(summary({**{n: 0.0 for n in C1}, "fpgm": 1.5}), C1, C1, margin=0.5)
    assert led.loc[0, "verdict"] == "not supported" and "fpgm" in led.loc[0, "measured"]
    assert led.loc[0, "basis"] == "construction + measured"


def test_c1_measured_is_inconclusive_when_a_significant_difference_straddles_the_margin():
    """0.6 ± 0.3 is significant after Holm over the 16 cells, but its interval [0.3, 0.9] is
    neither within the margin nor wholly outside it: neither rule applies."""
    s = summary({**{n: 0.0 for n in C1}, "l1_magnitude": 0.6})
    assert crit.criteria_summary(s, C1)["sig"].eq("up").sum() == 4  # one per S
    assert verdicts(s)["C1"] == "inconclusive"


def test_c1_measured_needs_holm_to_call_a_difference_beyond_the_margin():
    """1.7 ± 1.176: the interval [0.52, 2.88] lies wholly outside the margin and p = 0.005, but
    Holm over the 16 cells lifts p above 0.05, so the difference is not called."""
    s = summary({**{n: 0.0 for n in C1}, "l1_magnitude": 1.7}, half=1.176)
    fam = crit.criteria_summary(s, C1)
    hit = fam[fam["scorer"] == "l1_magnitude"]
    assert (hit["escape_p"] < 0.05).all() and (hit["p_holm"] > 0.05).all()
    assert verdicts(s)["C1"] == "inconclusive"


def test_c1_fails_by_construction_whatever_the_measured_part_says():
    s = summary({n: 0.0 for n in C1})
    s.loc[s["scorer"] == "log_magnitude", "mask_hash"] = "other"
    assert verdicts(s)["C1"] == "not supported"


def test_c7_clusters_within_two_points_and_not_beyond():
    assert verdicts(summary({"fpgm": 1.0, "gradient": -1.2}), ("fpgm", "gradient"))["C7"] == "supported"
    assert verdicts(summary({"fpgm": 1.0, "gradient": 5.0}), ("fpgm", "gradient"))["C7"] == "not supported"
    wide = summary({"fpgm": 1.0, "gradient": 1.9}, half=1.0)  # significant, interval [0.9, 2.9] holds 2
    assert verdicts(wide, ("fpgm", "gradient"))["C7"] == "inconclusive"


def test_the_fine_grid_never_enters_a_verdict():
    """A criterion far off at an S outside the main grid turns C1 and C7 when all S are judged,
    and changes nothing when the ledger judges the main S."""
    main = summary({n: 0.1 for n in C1})
    off = summary({**{n: 0.1 for n in C1}, "fpgm": 9.0}, grid=(0.45, 0.9))
    both = pd.concat([main, off], ignore_index=True)
    assert verdicts(both) == {"C1": "not supported", "C7": "not supported"}
    assert verdicts(both, sparsities=MAIN) == verdicts(main) == {"C1": "supported", "C7": "supported"}
    led = crit.ledger(both, C1, C1, margin=0.5, sparsities=MAIN)
    assert "@0.45" not in led.loc[0, "family"] and "@0.9" not in led.loc[1, "family"]
    assert len(crit.at(both, [0.45])) == len(off) // 2 and crit.at(both, None) is both


def rows_and_correct(n_images: int = 4000, rng=None):
    """Sweep rows of a seeded selector A, a seeded criterion B and a deterministic one C at two S,
    with per-image correctness: A keeps about 4 points more than B (every seed) and 3 fewer than C."""
    rng = rng or np.random.default_rng(0)
    rows, correct = [], {}
    for S in (0.5, 0.7):
        base = rng.random(n_images) < 0.5
        for scorer, seeds, shift in (("A", range(5), 0.0), ("B", range(5), -0.08), ("C", [0], 0.06)):
            for seed in seeds:
                flip = rng.random(n_images) < abs(shift)
                c = (base & ~flip) if shift < 0 else (base | flip) if shift > 0 else base.copy()
                if scorer == "A":  # every seed of A differs a little from the others
                    c = c ^ (rng.random(n_images) < 0.002)
                key = f"{scorer}-{S}-{seed}"
                correct[(key, 0, 0)] = c
                rows.append(dict(scorer=scorer, sparsity=S, seed=seed, allocation="block", recovery_steps=0,
                                 tag="main", mask_hash=key))  # fmt: skip
    return pd.DataFrame(rows), correct


def test_versus_table_pairs_seeds_and_recovers_the_built_in_differences():
    rows, correct = rows_and_correct()
    v = crit.versus_table(rows, correct, "A", ["B", "C", "A", "missing"])
    assert set(v["versus"]) == {"B", "C"} and sorted(v["sparsity"].unique()) == [0.5, 0.7]
    for r in v.itertuples():
        a = np.mean([correct[(f"A-{r.sparsity}-{s}", 0, 0)].mean() for s in range(5)])
        b = np.mean([correct[(f"{r.versus}-{r.sparsity}-{s}", 0, 0)].mean() for s in (range(5) if r.versus == "B" else [0])])
        assert r.mean == pytest.approx((a - b) * 100) and r.low < r.mean < r.high
        assert r.n_seeds == 5
    by = v.set_index(["versus", "sparsity"])["mean"]
    assert (by.loc["B"] > 2.0).all() and (by.loc["C"] < -1.5).all() and (v["sig"] != "").all()
    assert (v["p_holm"] >= v["p"]).all() and set(v["sig"]) <= {"up", "down", ""}


def test_versus_table_ignores_other_allocations_tags_and_recovery():
    rows, correct = rows_and_correct()
    moved = rows.assign(allocation=np.where(rows["scorer"] == "C", "global", "block"))
    assert set(crit.versus_table(moved, correct, "A", ["B", "C"])["versus"]) == {"B"}
    assert crit.versus_table(rows.assign(tag="matched"), correct, "A", ["B"]).empty
    assert crit.versus_table(rows.assign(recovery_steps=100), correct, "A", ["B"]).empty


def test_versus_table_pairs_only_the_seeds_both_have():
    rows, correct = rows_and_correct()
    extra = rows[rows["scorer"] == "B"].copy()
    for seed in range(5, 20):  # B with 20 seeds: A's 5 pair with B's first 5
        more = extra.assign(seed=seed, mask_hash=extra["mask_hash"] + f"x{seed}")
        for r in more.itertuples():
            correct[(r.mask_hash, 0, 0)] = correct[(f"B-{r.sparsity}-0", 0, 0)]
        rows = pd.concat([rows, more], ignore_index=True)
    v = crit.versus_table(rows, correct, "A", ["B"])
    assert (v["n_seeds"] == 5).all()
    shifted = rows[~((rows["scorer"] == "B") & (rows["seed"] < 2))]  # B from seed 2: 3 pairs
    assert (crit.versus_table(shifted, correct, "A", ["B"])["n_seeds"] == 3).all()
    one = rows[~((rows["scorer"] == "B") & (rows["seed"] != 3))]  # a seeded B with one seed: no pairs
    assert crit.versus_table(one, correct, "A", ["B"]).empty


def test_pairing_by_seed_narrows_the_interval_when_seeds_share_their_luck():
    """A's seed s is B's seed s with 1% of the images flipped, and the seeds differ a lot among
    themselves: paired by seed the difference is sharp, unpaired it would carry the seeds' spread."""
    rng = np.random.default_rng(1)
    rows, correct = [], {}
    for seed in range(5):
        b = rng.random(4000) < rng.uniform(0.3, 0.7)  # each seed its own accuracy
        a = b | (rng.random(4000) < 0.02)
        for name, c in (("A", a), ("B", b)):
            correct[(f"{name}{seed}", 0, 0)] = c
            rows.append(dict(scorer=name, sparsity=0.7, seed=seed, allocation="block", recovery_steps=0,
                             tag="main", mask_hash=f"{name}{seed}"))  # fmt: skip
    v = crit.versus_table(pd.DataFrame(rows), correct, "A", ["B"]).iloc[0]
    acc = {n: np.array([correct[(f"{n}{s}", 0, 0)].mean() * 100 for s in range(5)]) for n in "AB"}
    unpaired_half = 2.78 * np.sqrt((acc["A"].var(ddof=1) + acc["B"].var(ddof=1)) / 5)
    assert v["high"] - v["low"] < 0.2 * 2 * unpaired_half and v["low"] > 0


def test_identical_selections_stay_out_of_the_holm_family():
    """Where A keeps C's channels for every seed (here at S = 0.5) the cell is exactly 0 and not
    tested: the family is the other cells, Holm-adjusted among themselves."""
    rows, correct = rows_and_correct()
    at = (rows["scorer"] == "A") & (rows["sparsity"] == 0.5)
    rows.loc[at, "mask_hash"] = "C-0.5-0"
    v = crit.versus_table(rows, correct, "A", ["B", "C"])
    zero = v[(v["versus"] == "C") & (v["sparsity"] == 0.5)]
    assert len(zero) == 1 and zero["identical"].all() and (zero["mean"] == 0).all()
    assert (zero["p_holm"] == 1).all() and (zero["sig"] == "").all()
    tested = v[~v["identical"]]
    assert len(tested) == 3 and np.allclose(tested["p_holm"], holm(tested["p"].to_numpy()))
