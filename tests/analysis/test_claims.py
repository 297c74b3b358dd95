"""The verdict rules on constructed summaries with a known answer (no model needed): one test
per rule and outcome, the regime boundaries, and the family-wise control they rely on."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sics import analysis
from sics.analysis import claims

KAPPA = {"magnitude": "0", "magnitude_sq": "0", "log_magnitude": "0", "logistic_smooth": "1",
         "tent_smooth": "1", "sine_smooth": "1", "logistic_raw": "2", "tent_raw": "2",
         "fake_nonmonotone": "control", "gradient": "baseline", "bump": "baseline"}  # fmt: skip


def summary(escapes: dict, half: float = 0.3, hashes=None, halves=None) -> pd.DataFrame:
    """escapes: {S: {scorer: escape}}; every interval is escape ± half (normal, so p follows)."""
    rows = []
    for S, by in escapes.items():
        for scorer, kappa in KAPPA.items():
            e = 0.0 if kappa == "0" else by.get(scorer, 0.0)
            h = (halves or {}).get((S, scorer), half)
            se = h / 1.959963984540054
            p = 1.0 if kappa == "0" else float(2 * sps.norm.sf(abs(e) / se)) if se > 0 else 1.0
            rows.append(dict(scorer=scorer, kappa=kappa, sparsity=S, allocation="block",
                             recovery_steps=0, acc=50.0 + e, acc_low=50 + e - h, acc_high=50 + e + h,
                             escape=e, escape_low=e - h, escape_high=e + h, escape_p=p,
                             escape_se_seed=0.0, escape_se_image=se, n_seeds=5,
                             mask_hash=(hashes or {}).get((S, scorer), "same" if kappa == "0" else scorer)))
    return pd.DataFrame(rows)


def pairs(c5: dict | None = None, c6: dict | None = None, half: float = 0.3) -> dict:
    """Paired tables: {S: mean} for C5 (fake − gradient) and C6 (chaos − bump)."""
    def frame(d):
        se = half / 1.959963984540054
        return pd.DataFrame([dict(sparsity=S, mean=m, low=m - half, high=m + half, se=se, df=np.inf,
                                  p=float(2 * sps.norm.sf(abs(m) / se)), n_seeds=5, se_seed=0.0,
                                  se_image=se)
                             for S, m in (d or {}).items()])  # fmt: skip
    return {"C5": frame(c5), "C6": frame(c6)}


PAPER_LIKE = {0.5: {"logistic_smooth": -0.1}, 0.6: {},
              0.7: {"logistic_smooth": 6.6, "tent_smooth": 4.0, "logistic_raw": 1.0},
              0.8: {"logistic_smooth": -1.0, "tent_smooth": -1.2, "sine_smooth": -1.1,
                    "logistic_raw": 2.6, "tent_raw": 1.0}}
PAPER_PAIRS = dict(c5={S: -2.0 for S in (0.5, 0.6, 0.7, 0.8)}, c6={0.7: 4.0})


def verdicts(df, p=None, **kw):
    led = claims.ledger(df, p if p is not None else pairs(**PAPER_PAIRS), **kw)
    return dict(zip(led["claim"], led["verdict"]))


def test_a_paper_like_run_supports_every_claim():
    assert verdicts(summary(PAPER_LIKE)) == {c: "supported" for c in claims.CLAIMS}


def test_c1_holds_by_construction_and_fails_when_a_mask_differs():
    led = claims.ledger(summary(PAPER_LIKE), None, ["C1"])
    assert led["verdict"].iloc[0] == "supported" and led["basis"].iloc[0] == "construction"
    df = summary(PAPER_LIKE, hashes={(0.7, "log_magnitude"): "other"})
    assert verdicts(df)["C1"] == "not supported"
    # an S where magnitude is the only κ=0 scorer (the fine grid of notebook 09) compares nothing
    fine = summary(PAPER_LIKE)
    alone = fine[fine["scorer"] == "magnitude"].assign(sparsity=0.85)
    led = claims.ledger(pd.concat([fine, alone], ignore_index=True), None, ["C1"])
    assert "identical masks at 4/4 S" in led["measured"].iloc[0]


def test_c2_needs_narrow_intervals_to_be_supported():
    flat = {S: {} for S in (0.5, 0.6, 0.7, 0.8)}
    assert verdicts(summary(flat, half=0.3))["C2"] == "supported"  # every upper bound 0.3 < 0.5
    assert verdicts(summary(flat, half=2.0))["C2"] == "inconclusive"  # low power is not support
    assert verdicts(summary(flat, half=0.3), margin=0.2)["C2"] == "inconclusive"
    early = {**PAPER_LIKE, 0.5: {"tent_raw": 2.0}}
    assert verdicts(summary(early))["C2"] == "not supported"


def test_an_escape_inside_the_margin_is_no_escape_and_no_equivalence():
    """Significant against 0 but not beyond the margin refutes nothing and supports nothing."""
    inside = {**PAPER_LIKE, 0.5: {"tent_raw": 0.44}, 0.6: {"logistic_raw": 0.47}}
    df = summary(inside, halves={(0.5, "tent_raw"): 0.23, (0.6, "logistic_raw"): 0.3})
    assert (df.set_index(["scorer", "sparsity"]).loc[[("tent_raw", 0.5), ("logistic_raw", 0.6)], "escape_low"] > 0).all()
    assert verdicts(df)["C2"] == "inconclusive"
    beyond = summary({**PAPER_LIKE, 0.5: {"tent_raw": 1.5}})  # [1.2, 1.8]: wholly above +0.5
    assert verdicts(beyond)["C2"] == "not supported"
    c3_inside = summary({**PAPER_LIKE, 0.7: {"logistic_smooth": 0.7, "tent_smooth": 0.6}})  # [0.4, 1.0]
    assert verdicts(c3_inside)["C3"] not in ("supported", "smaller than the paper", "not supported")
    c6_inside = pairs(c5={S: -2.0 for S in (0.5, 0.6, 0.7, 0.8)}, c6={0.7: 0.7})  # [0.4, 1.0]
    assert verdicts(summary(PAPER_LIKE), c6_inside)["C6"] not in ("supported", "smaller than the paper", "not supported")


def test_c2_controls_the_family_wise_error():
    # one of 10 tests at p ≈ 0.02 against the margin: beyond it alone, not after Holm over the family
    e = claims.MARGIN + 0.3 * 2.33 / 1.96
    df = summary({0.5: {"tent_raw": e}, 0.6: {}, 0.7: {}, 0.8: {}}, half=0.3)
    row = df[(df["scorer"] == "tent_raw") & (df["sparsity"] == 0.5)].iloc[0]
    assert row["escape_low"] > claims.MARGIN
    assert verdicts(df)["C2"] == "inconclusive"
    in_family = df["kappa"].isin(["1", "2"]) & (df["sparsity"] < 0.65)
    alone = df[~in_family | ((df["scorer"] == "tent_raw") & (df["sparsity"] == 0.5))]
    assert verdicts(alone)["C2"] == "not supported"  # a family of one: beyond the margin


def test_c3_tests_every_smooth_class_not_the_winner_alone():
    at = {"logistic_smooth": 0.62, "tent_smooth": 0.55, "sine_smooth": 0.5}  # each p ≈ 0.04..0.1
    df = summary({**PAPER_LIKE, 0.7: at}, half=0.6)
    best = df[(df["sparsity"] == 0.7) & (df["scorer"] == "logistic_smooth")].iloc[0]
    assert best["escape_low"] > 0  # the winner alone would read "supported" (winner's curse)
    # not beyond the margin after Holm: no escape of consequence shown, and +6.6 lies far above
    assert verdicts(df)["C3"] == "not the paper's size"
    assert verdicts(summary(PAPER_LIKE))["C3"] == "supported"
    hurts = {**PAPER_LIKE, 0.7: {"logistic_smooth": -2.0, "tent_smooth": -1.5, "sine_smooth": -1.0}}
    assert verdicts(summary(hurts))["C3"] == "not supported"
    wide = {**PAPER_LIKE, 0.7: {"logistic_smooth": 0.5}}
    assert verdicts(summary(wide, half=3.0))["C3"] == "not the paper's size"  # [-2.5, 3.5] excludes 6.6
    assert verdicts(summary(wide, half=6.5))["C3"] == "inconclusive"  # [-6, 7] holds it: nothing decided


def test_c4_rules():
    assert verdicts(summary(PAPER_LIKE))["C4"] == "supported"
    smooth_wins = {**PAPER_LIKE, 0.8: {"logistic_smooth": 3.0, "logistic_raw": 2.6}}
    assert verdicts(summary(smooth_wins))["C4"] == "not supported"
    raw_flat = {**PAPER_LIKE, 0.8: {"logistic_smooth": -1.0, "tent_smooth": -1.0, "sine_smooth": -1.0}}
    assert verdicts(summary(raw_flat))["C4"] == "not supported"  # no κ=2 escape, narrow intervals
    smooth_level = {**PAPER_LIKE, 0.8: {**PAPER_LIKE[0.8], "sine_smooth": -0.1}}
    assert verdicts(summary(smooth_level))["C4"] == "not supported"  # [-0.4, 0.2]: wholly above -margin
    smooth_unclear = {**PAPER_LIKE, 0.8: {**PAPER_LIKE[0.8], "sine_smooth": -0.6}}
    assert verdicts(summary(smooth_unclear))["C4"] == "inconclusive"  # [-0.9, -0.3] straddles -margin
    raw_small = {**PAPER_LIKE, 0.8: {**PAPER_LIKE[0.8], "logistic_raw": 0.75, "tent_raw": 0.7}}
    # κ=2 above 0 but not beyond +margin, and the paper's +2.6 above its interval
    assert verdicts(summary(raw_small))["C4"] == "not the paper's size"
    raw_wide = {**PAPER_LIKE, 0.8: {**PAPER_LIKE[0.8], "logistic_raw": 0.75, "tent_raw": 0.7}}
    assert verdicts(summary(raw_wide, half=2.0))["C4"] == "inconclusive"  # [-1.25, 2.75] holds +2.6


def test_c5_is_paired_and_needs_every_sparsity():
    df = summary(PAPER_LIKE)
    assert verdicts(df, pairs(c5={S: -2.0 for S in (0.5, 0.6, 0.7, 0.8)}, c6={0.7: 4}))["C5"] == "supported"
    some = {0.5: -2.0, 0.6: -0.6, 0.7: -2.0, 0.8: -2.0}
    assert verdicts(df, pairs(c5=some, c6={0.7: 4}))["C5"] == "inconclusive"  # [-0.9, -0.3] at 0.6
    level = {0.5: -2.0, 0.6: -0.1, 0.7: -2.0, 0.8: -2.0}
    assert verdicts(df, pairs(c5=level, c6={0.7: 4}))["C5"] == "not supported"  # wholly above -margin
    barely = {S: -0.7 for S in (0.5, 0.6, 0.7, 0.8)}
    assert verdicts(df, pairs(c5=barely, c6={0.7: 4}))["C5"] == "inconclusive"  # below 0, not beyond -margin
    above = {0.5: -2.0, 0.6: 2.0, 0.7: -2.0, 0.8: -2.0}
    assert verdicts(df, pairs(c5=above, c6={0.7: 4}))["C5"] == "not supported"
    assert verdicts(df, pairs(c6={0.7: 4}))["C5"] == "inconclusive"  # not measured


def test_c6_is_paired_at_s_near_0_7():
    df = summary(PAPER_LIKE)
    c5 = {S: -2.0 for S in (0.5, 0.6, 0.7, 0.8)}
    assert verdicts(df, pairs(c5=c5, c6={0.7: 4.0}))["C6"] == "supported"
    assert verdicts(df, pairs(c5=c5, c6={0.7: 0.0}))["C6"] == "not supported"  # within ±margin
    assert verdicts(df, pairs(c5=c5, c6={0.7: 0.2}, half=1.0))["C6"] == "not the paper's size"
    assert verdicts(df, pairs(c5=c5, c6={0.7: 1.0}, half=3.5))["C6"] == "inconclusive"  # holds +4.0
    assert verdicts(df, pairs(c5=c5, c6={0.5: 4.0}))["C6"] == "inconclusive"  # not at S≈0.7


def test_missing_intervals_support_nothing():
    flat = {S: {} for S in (0.5, 0.6, 0.7, 0.8)}
    df = summary(flat).assign(escape_low=np.nan, escape_high=np.nan, escape_p=np.nan,
                              escape_se_seed=np.nan)  # one seed of a stochastic scorer
    v = verdicts(df, pairs(c6={0.7: 4.0}))
    assert v["C2"] == "inconclusive" and v["C3"] == "inconclusive" and v["C4"] == "inconclusive"


def test_regime_boundaries_need_the_neighbouring_grid_point():
    grid = {S: {} for S in np.round(np.arange(0.5, 0.86, 0.05), 2)}
    grid[0.6] = {"logistic_smooth": 3.0}  # isolated: not a boundary
    grid[0.7] = {"logistic_smooth": 3.0, "logistic_raw": 1.0}
    grid[0.75] = {"logistic_smooth": 2.0, "logistic_raw": 2.5}
    grid[0.8] = {"logistic_smooth": -1.0, "logistic_raw": 2.0}
    grid[0.85] = {"logistic_raw": 1.5}
    assert analysis.regime_boundaries(summary(grid)) == (0.7, 0.75)
    assert analysis.regime_boundaries(summary({S: {} for S in grid})) == (None, None)


def test_regime_boundaries_adjust_for_the_whole_grid():
    grid = {S: {} for S in np.round(np.arange(0.4, 0.91, 0.025), 3)}
    e = 0.3 * 2.6 / 1.96  # p ≈ 0.009 each: significant alone, not after Holm over ~100 tests
    grid[0.6] = {"logistic_smooth": e}
    grid[0.625] = {"logistic_smooth": e}
    df = summary(grid)
    assert (df["escape_low"] > 0).sum() == 2
    assert analysis.regime_boundaries(df) == (None, None)


def test_holm_family_marks_direction():
    df = summary({0.7: {"logistic_smooth": 3.0, "tent_raw": -3.0}})
    fam = analysis.escape_family(df)
    sig = dict(zip(fam["scorer"], fam["sig"]))
    assert sig["logistic_smooth"] == "up" and sig["tent_raw"] == "down" and sig["sine_smooth"] == ""
    assert "magnitude" not in sig  # κ=0 is not tested: its escape is 0 by construction


@pytest.mark.parametrize("S,expected", [(0.5, "0"), (0.64, "0"), (0.7, "1"), (0.76, "2")])
def test_paper_regime(S, expected):
    assert claims.paper_regime(S)[0] == expected


def test_verdicts_judge_size_as_well_as_sign():
    """A significant effect below the paper's interval is "smaller than the paper"; the ledger
    says whether the paper's value lies inside our interval."""
    small = {**PAPER_LIKE, 0.7: {"logistic_smooth": 2.0}, 0.8: {**PAPER_LIKE[0.8], "logistic_raw": 1.0}}
    led = claims.ledger(summary(small), pairs(c5={S: -2.0 for S in (0.5, 0.6, 0.7, 0.8)}, c6={0.7: 2.0}))
    got = dict(zip(led["claim"], led["verdict"]))
    assert got["C3"] == got["C4"] == got["C6"] == "smaller than the paper"
    inside = dict(zip(led["claim"], led["paper_inside"]))
    assert inside["C3"] is False and inside["C6"] is False and np.isnan(inside["C2"]) and np.isnan(inside["C5"])
    led = claims.ledger(summary(PAPER_LIKE), pairs(**PAPER_PAIRS))
    assert dict(zip(led["claim"], led["paper_inside"]))["C3"] is True
    assert all("Size:" in r for r in led.set_index("claim").loc[["C3", "C4", "C6"], "rule"])
    verdict, inside = claims.sized("C5", "inconclusive", -1.0, 1.0)  # no number: the sign's verdict
    assert verdict == "inconclusive" and np.isnan(inside)


def _ledger_pair():
    """A default ledger (C1-C6) and a criteria ledger (C1 with its measured part, C7) as the
    notebooks make them, from one synthetic summary."""
    base = claims.ledger(pd.DataFrame(columns=["scorer", "kappa", "sparsity", "escape", "escape_low", "escape_high",
                                               "escape_p", "overlap_magnitude", "acc", "plateau", "n_seeds"]))  # fmt: skip
    extra = pd.DataFrame([{**base.iloc[0].to_dict(), "measured": "by construction; measured: x", "basis":
                           "construction + measured", "value": 0.25, "low": -0.123456789, "high": 0.5,
                           "paper_inside": True},
                          {"claim": "C7", "statement": "clustering", "paper": "+6.6", "verdict": "inconclusive",
                           "value": 1.5, "low": float("nan"), "high": 3.0, "paper_inside": False}])  # fmt: skip
    return base, extra


def test_merged_ledger_replaces_the_criteria_studys_claims_in_claim_order():
    base, extra = _ledger_pair()
    out = claims.merged(base, extra)
    assert list(out["claim"]) == [*claims.CLAIMS, "C7"]
    assert out.loc[0, "basis"] == "construction + measured" and out.loc[0, "value"] == 0.25
    assert list(out.columns[: len(base.columns)]) == list(base.columns)
    assert claims.merged(base, None) is base and claims.merged(base, extra.iloc[:0]) is base


def test_the_merge_step_joins_the_notebooks_ledgers_and_merging_again_changes_no_byte(tmp_path):
    """06 saves its own ledger, 09 its own; `make paper`'s last step merges them into claims.*,
    whatever order the notebooks ran in, and merging again (every `make paper` does) rewrites the
    files byte for byte."""
    from sics.report import tables
    from sics.report.output import Output

    base, extra = _ledger_pair()
    out = Output(tmp_path, "measured on A | ckpt=m-1 | rev=06")  # 06's caption, and 09's (another rev)
    out_09 = Output(tmp_path, "measured on B | ckpt=m-1 | rev=09")
    tables.save_claims(base, out, title="Claims ledger: test")
    assert "C7" not in set(tables.merge_claims(tmp_path)["claim"])  # before 09 ran: 06's own
    tables.save_table(extra, "claims_criteria", out_09)
    assert "C7" in set(tables.merge_claims(tmp_path)["claim"])
    merged = {s: (tmp_path / f"claims.{s}").read_bytes() for s in ("csv", "md", "tex")}
    tables.save_claims(base, out, title="Claims ledger: test")  # 06 again, after 09
    tables.merge_claims(tmp_path)
    assert {s: (tmp_path / f"claims.{s}").read_bytes() for s in ("csv", "md", "tex")} == merged
    assert (tmp_path / "claims_sweeps.csv").read_bytes() != merged["csv"]  # 06's own file is left as 06 wrote it
    text, csv = merged["md"].decode(), merged["csv"].decode()
    assert text.startswith("**Claims ledger: test**") and text.rstrip().endswith("rev=06_") and "| C7 " in text
    assert "-0.123457" in csv and ",+6.6," in csv and "True" in csv and "False" in csv
    assert tables.merge_claims(tmp_path / "empty") is None


def test_a_criteria_ledger_of_another_checkpoint_is_not_merged(tmp_path, capsys):
    from sics.report import tables
    from sics.report.output import Output

    base, extra = _ledger_pair()
    tables.save_table(extra, "claims_criteria", Output(tmp_path, "ckpt=old-1 | rev=x"))
    tables.save_claims(base, Output(tmp_path, "ckpt=new-2 | rev=y"), title="t")
    saved = tables.merge_claims(tmp_path)
    assert "C7" not in set(saved["claim"]) and saved.loc[0, "basis"] == base.loc[0, "basis"]
    assert "another checkpoint" in capsys.readouterr().out
