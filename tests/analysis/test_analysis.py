"""The analysis is a pure function of sweep rows and per-image correctness: check its numbers on
constructed data, and that a newly registered class reaches every table and claim."""

import json

import numpy as np
import pandas as pd
import pytest

from sics import analysis
from sics.analysis import claims
from sics.report import tables
from sics.selection.scorers import SCORERS, feature_classes, modulate, register

N = 4000


def row(scorer, S, seed, h, kappa, rec=0, alloc="block"):
    return dict(scorer=scorer, kappa=kappa, kappa_hat=int(kappa) if kappa.isdigit() else 1,
                sparsity=S, seed=seed, mask_hash=h, recovery_steps=rec, allocation=alloc,
                params=json.dumps({}), overlap_magnitude=1.0 if scorer == "magnitude" else 0.9,
                jaccard_magnitude=1.0 if scorer == "magnitude" else 0.8)  # fmt: skip


@pytest.fixture
def data():
    """Plateau at 60% correct; tent_raw gains exactly 100/4000 = +2.5 points on each of 3 seeds
    (different images per seed); bump is identical to the plateau."""
    rng = np.random.default_rng(0)
    plateau = rng.random(N) < 0.6
    wrong = np.flatnonzero(~plateau)
    correct = {("mag", 0, 0): plateau, ("bump", 0, 0): plateau.copy()}
    rows = [row("magnitude", 0.7, 0, "mag", "0"), row("bump", 0.7, 0, "bump", "baseline")]
    for s in range(3):
        c = plateau.copy()
        c[wrong[s * 100 : (s + 1) * 100]] = True
        correct[(f"t{s}", 0, 0)] = c
        rows.append(row("tent_raw", 0.7, s, f"t{s}", "2"))
    return pd.DataFrame(rows), correct


def test_summary_measures_escape_against_the_plateau_on_the_same_images(data):
    rows, correct = data
    s = analysis.summarize(rows, correct).set_index("scorer")
    assert s.loc["magnitude", "escape"] == 0 and s.loc["magnitude", "plateau"] == pytest.approx(
        correct[("mag", 0, 0)].mean() * 100)
    assert s.loc["tent_raw", "escape"] == pytest.approx(2.5)
    assert s.loc["tent_raw", "n_seeds"] == 3 and s.loc["tent_raw", "seeds"] == "0,1,2"
    assert s.loc["tent_raw", "escape_low"] > 1.5 and s.loc["tent_raw", "escape_high"] < 3.5
    assert s.loc["bump", "escape"] == 0 and s.loc["bump", "escape_p"] == 1.0


def test_summary_needs_the_plateau_rows(data):
    rows, correct = data
    with pytest.raises(KeyError, match="no plateau"):
        analysis.summarize(rows[rows["scorer"] != "magnitude"], correct)


def test_paired_table_and_its_negation(data):
    rows, correct = data
    d = analysis.paired_table(rows, correct, "tent_raw", "bump")
    assert d["mean"].iloc[0] == pytest.approx(2.5) and d["low"].iloc[0] > 0
    n = analysis.negate(d)
    assert n["mean"].iloc[0] == pytest.approx(-2.5) and n["high"].iloc[0] == -d["low"].iloc[0]
    with pytest.raises(ValueError, match="deterministic reference"):
        analysis.paired_table(rows, correct, "bump", "tent_raw")


def test_nearest_grid_point():
    assert analysis.nearest([0.5, 0.675, 0.725, 0.8], 0.7) == 0.675
    assert analysis.nearest([0.5, 0.6], 0.8) is None


@pytest.fixture
def new_smooth_class():
    @register("wave_smooth", kappa=1, stochastic=True)
    def wave_smooth(block, S, rng, *, lam: float = 0.2):
        phi = np.cos(2 * np.pi * rng.uniform() + 3 * np.pi * np.arange(block.H) / block.H)
        return modulate(block, S, phi, lam=lam)

    yield "wave_smooth"
    del SCORERS["wave_smooth"]


def test_a_new_smooth_class_reaches_table2_the_phase_table_and_the_claims(new_smooth_class):
    assert new_smooth_class in feature_classes()
    kappa = {"magnitude": "0", "logistic_smooth": "1", new_smooth_class: "1", "logistic_raw": "2"}
    summary = pd.DataFrame([
        dict(scorer=n, kappa=k, kappa_hat=int(k), sparsity=S, n_seeds=3, acc=50.0, acc_low=49.0,
             acc_high=51.0, escape=0.0 if k == "0" else 1.0, escape_low=0.5, escape_high=1.5,
             escape_p=0.001, escape_se_seed=0.0, escape_se_image=0.5 / 1.96, overlap_magnitude=0.9,
             allocation="block", recovery_steps=0, mask_hash=n)
        for S in (0.5, 0.6, 0.7, 0.8) for n, k in kappa.items()])  # fmt: skip
    table, shown = tables.table2(summary)
    assert new_smooth_class in set(table["scorer"]) and new_smooth_class in set(shown["scorer"])
    led = claims.ledger(summary, None, ["C2", "C3", "C4"]).set_index("claim")
    assert f"{new_smooth_class}@0.7" in led.loc["C3", "family"].split(";")
    assert f"{new_smooth_class}@0.5" in led.loc["C2", "family"].split(";")
    assert f"{new_smooth_class}@0.8" in led.loc["C4", "family"].split(";")


def test_table2_keeps_one_row_per_class_when_its_measured_kappa_moves_with_S():
    kappa_hat = {("magnitude", 0.5): 0, ("magnitude", 0.8): 0, ("tent_raw", 0.5): 2, ("tent_raw", 0.8): 2,
                 ("fake_nonmonotone", 0.5): 1, ("fake_nonmonotone", 0.8): 2}  # the control's κ̂ moves
    summary = pd.DataFrame([
        dict(scorer=n, kappa=k, kappa_hat=kappa_hat[n, S], sparsity=S, n_seeds=3, acc=50.0,
             acc_low=49.0, acc_high=51.0, escape=0.0 if k == "0" else 1.0, escape_low=0.5,
             escape_high=1.5, escape_p=0.001, overlap_magnitude=0.9, allocation="block",
             recovery_steps=0, mask_hash=n)
        for S in (0.5, 0.8) for n, k in {"magnitude": "0", "fake_nonmonotone": "control", "tent_raw": "2"}.items()])  # fmt: skip
    _, shown = tables.table2(summary)
    assert list(shown["scorer"]) == ["magnitude", "fake_nonmonotone", "tent_raw"]
    assert list(shown["κ̂"]) == [0, "1–2", 2]
    assert shown[["S=0.5", "S=0.8"]].notna().all().all()


def test_recovered_results_are_keyed_by_their_seed_too():
    a = pd.DataFrame([row("logistic_smooth", 0.7, s, "same", "1", rec=10) for s in (0, 1)])
    keys = {analysis.result_key(r) for r in a.itertuples()}
    assert keys == {("same", 10, 0), ("same", 10, 1)}
    b = pd.DataFrame([row("logistic_smooth", 0.7, s, "same", "1") for s in (0, 1)])
    assert {analysis.result_key(r) for r in b.itertuples()} == {("same", 0, 0)}


def test_a_saved_study_with_an_unregistered_scorer_is_summarised_from_its_rows():
    """The analysis reads whether a scorer is stochastic from the rows when the registry does not
    know it (a study saved with someone's custom scorer), so it needs neither their code nor torch."""
    rng = np.random.default_rng(0)
    rows, correct = [], {}
    for name, seeds in (("magnitude", [0]), ("their_scorer", [0, 1, 2]), ("their_fixed", [0])):
        for seed in seeds:
            h = f"{name}-{seed}"
            correct[(h, 0, 0)] = rng.random(400) < 0.6
            rows.append(dict(scorer=name, kappa="1", kappa_hat=1, sparsity=0.5, seed=seed, allocation="block",
                             recovery_steps=0, params="{}", mask_hash=h, overlap_magnitude=0.9,
                             jaccard_magnitude=0.8))  # fmt: skip
    summary = analysis.summarize(pd.DataFrame(rows), correct).set_index("scorer")
    assert "their_scorer" not in SCORERS and "their_fixed" not in SCORERS
    assert bool(summary.loc["their_scorer", "stochastic"]) and summary.loc["their_scorer", "n_seeds"] == 3
    assert not bool(summary.loc["their_fixed", "stochastic"])
    assert np.isfinite(summary.loc["their_scorer", "escape_low"])
