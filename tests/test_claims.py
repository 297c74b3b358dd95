"""The verdict rules on summaries with a known answer (no model needed)."""

import numpy as np
import pandas as pd

from sics import claims
from sics.report import regime_boundaries

KAPPA = {"magnitude": "0", "magnitude_sq": "0", "log_magnitude": "0", "logistic_smooth": "1",
         "tent_smooth": "1", "logistic_raw": "2", "tent_raw": "2", "fake_nonmonotone": "control",
         "gradient": "baseline"}  # fmt: skip


def summary(escapes: dict, half: float = 0.3, hashes=None, gradient_acc=50.0, fake_acc=49.0) -> pd.DataFrame:
    """escapes: {S: {scorer: escape}}; every interval is escape ± half."""
    rows = []
    for S, by in escapes.items():
        for scorer, kappa in KAPPA.items():
            e = by.get(scorer, 0.0)
            acc = 50.0 + e
            if scorer == "gradient":
                acc = gradient_acc
            if scorer == "fake_nonmonotone":
                acc = fake_acc
            rows.append(dict(scorer=scorer, kappa=kappa, sparsity=S, allocation="block", recovery_steps=0,
                             acc=acc, acc_low=acc - half, acc_high=acc + half, escape=e,
                             escape_low=e - half, escape_high=e + half,
                             mask_hash=(hashes or {}).get((S, scorer), "same" if kappa == "0" else scorer)))
    return pd.DataFrame(rows)


PAPER_LIKE = {0.5: {"logistic_smooth": -0.1}, 0.6: {},
              0.7: {"logistic_smooth": 5.0, "tent_smooth": 4.0, "logistic_raw": 1.0},
              0.8: {"logistic_smooth": -1.0, "tent_smooth": -0.8, "logistic_raw": 2.6, "tent_raw": 1.0}}


def verdicts(df):
    led = claims.ledger(df, None, ("C1", "C2", "C3", "C4", "C5"))
    return dict(zip(led["claim"], led["verdict"]))


def test_a_paper_like_run_supports_every_claim():
    assert verdicts(summary(PAPER_LIKE)) == {c: "supported" for c in ("C1", "C2", "C3", "C4", "C5")}


def test_a_flat_run_supports_neither_escape_claim():
    flat = {S: {} for S in (0.5, 0.6, 0.7, 0.8)}
    v = verdicts(summary(flat, fake_acc=50.0))
    assert v["C1"] == "supported" and v["C2"] == "supported"
    assert v["C3"] == "inconclusive" and v["C4"] == "inconclusive" and v["C5"] == "inconclusive"


def test_contradicting_runs_are_not_supported():
    early = {**PAPER_LIKE, 0.5: {"tent_raw": 2.0}}
    assert verdicts(summary(early))["C2"] == "not supported"
    smooth_wins = {**PAPER_LIKE, 0.8: {"logistic_smooth": 3.0, "logistic_raw": 2.6}}
    assert verdicts(summary(smooth_wins))["C4"] == "not supported"
    hurts = {**PAPER_LIKE, 0.7: {"logistic_smooth": -2.0, "tent_smooth": -1.5}}
    assert verdicts(summary(hurts))["C3"] == "not supported"
    assert verdicts(summary(PAPER_LIKE, fake_acc=51.0))["C5"] == "not supported"


def test_c1_fails_when_a_monotone_scorer_selects_differently():
    df = summary(PAPER_LIKE, hashes={(0.7, "log_magnitude"): "other"})
    assert verdicts(df)["C1"] == "not supported"


def test_regime_boundaries_follow_the_written_rule():
    grid = {S: {} for S in np.round(np.arange(0.5, 0.86, 0.05), 2)}
    grid[0.65] = {"logistic_smooth": 2.0}
    grid[0.7] = {"logistic_smooth": 3.0, "logistic_raw": 1.0}
    grid[0.8] = {"logistic_smooth": -1.0, "logistic_raw": 2.0}
    grid[0.85] = {"logistic_raw": 1.5}
    assert regime_boundaries(summary(grid)) == (0.65, 0.8)
    assert regime_boundaries(summary({S: {} for S in grid})) == (None, None)
