"""The paper's six claims and the written rules that turn our measurements into verdicts.

Only the paper's own numbers are typed in here (converted to accuracy points); everything
else comes from the sweep. Rules (escape intervals are paired bootstraps over test images and
seeds, accuracy intervals t-intervals over seeds, all 95%):

- C1 supported iff the three κ=0 scorers keep identical channels at every S; else not supported.
- C2 (S < 0.65) supported iff no κ=1/κ=2 class escapes significantly (interval low > 0) at any
  such S; not supported if one does.
- C3 (S = 0.7, or the grid point nearest it) supported iff the best κ=1 class escapes
  significantly; not supported if its interval lies below 0; inconclusive otherwise.
- C4 (S = 0.8) supported iff the best κ=2 class escapes significantly and every κ=1 class lies
  below the plateau (mean < 0, at least one significantly); not supported if the best κ=2 lies
  significantly below 0 or a κ=1 class escapes significantly; inconclusive otherwise.
- C5 supported iff `fake_nonmonotone` is below the gradient baseline's interval at every S; not
  supported if it is above it at any S; inconclusive otherwise.
- C6 (S = 0.7) supported iff `logistic_smooth` beats `bump` significantly on the same images
  (paired); not supported if `bump` beats it significantly; inconclusive otherwise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .stats import paired_escape

CLAIMS = {
    "C1": ("Every rank-monotone scorer gives the same selection and accuracy Π(S).", "identical masks"),
    "C2": ("S < 0.65: the plateau is already optimal; non-monotone features match it or do worse.", "no escape"),
    "C3": ("S ≈ 0.7: rank-aligned smooth non-monotone features escape, best by +6.6 points.", "+6.6"),
    "C4": ("S = 0.8: only raw high-frequency features escape (+2.6); smooth ones fall below.", "+2.6"),
    "C5": ("A fake non-monotone scorer derived from magnitude does worse than the gradient baseline.", "fake < gradient"),
    "C6": ("A Gaussian bump escapes by only +0.6 against +4.6 for the chaos-derived feature.", "+0.6 vs +4.6"),
}  # fmt: skip
RULES = {
    "C1": "supported iff the κ=0 masks are identical at every S",
    "C2": "supported iff no κ=1/2 class escapes significantly at S < 0.65",
    "C3": "supported iff the best κ=1 class escapes significantly at S≈0.7; not if its CI < 0",
    "C4": "supported iff best κ=2 escapes significantly and all κ=1 lie below Π at S≈0.8",
    "C5": "supported iff fake < gradient's CI at every S; not if fake > its CI at some S",
    "C6": "supported iff logistic_smooth beats bump significantly (paired) at S≈0.7",
}
TABLE_OF = {"C1": "Table 1", "C2": "Tables 2-3", "C3": "Tables 2-3", "C4": "Tables 2-3",
            "C5": "Table 4", "C6": "Table 5"}  # fmt: skip


def _nearest(summary: pd.DataFrame, S: float) -> float | None:
    xs = np.array(sorted(summary["sparsity"].unique()))
    if len(xs) == 0:
        return None
    best = float(xs[np.argmin(np.abs(xs - S))])
    return best if abs(best - S) <= 0.05 else None


def _iv(m: float, lo: float, hi: float) -> str:
    return f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _row(cid: str, measured: str, verdict: str, S=None, value=np.nan, low=np.nan, high=np.nan) -> dict:
    statement, paper = CLAIMS[cid]
    return dict(claim=cid, statement=statement, paper=paper, where=TABLE_OF[cid], sparsity=S,
                measured=measured, value=value, low=low, high=high, verdict=verdict,
                rule=RULES[cid])  # fmt: skip


def _missing(cid: str, what: str) -> dict:
    return _row(cid, f"not measured ({what} missing from this sweep)", "inconclusive")


def c1(summary: pd.DataFrame) -> dict:
    k0 = summary[summary["kappa"] == "0"]
    if k0["scorer"].nunique() < 2:
        return _missing("C1", "κ=0 scorers")
    same = k0.groupby("sparsity")["mask_hash"].nunique().eq(1)
    spread = k0.groupby("sparsity")["acc"].agg(lambda a: a.max() - a.min()).max()
    verdict = "supported" if same.all() else "not supported"
    return _row("C1", f"identical masks at {int(same.sum())}/{len(same)} S; max accuracy spread {spread:.2f} pts",
                verdict, value=float(spread))  # fmt: skip


def c2(summary: pd.DataFrame) -> dict:
    nm = summary[summary["kappa"].isin(["1", "2"]) & (summary["sparsity"] < 0.65)]
    if nm.empty:
        return _missing("C2", "non-monotone classes at S < 0.65")
    best = nm.loc[nm["escape"].idxmax()]
    verdict = "not supported" if (nm["escape_low"] > 0).any() else "supported"
    return _row("C2", f"best non-monotone: {best['scorer']} at S={best['sparsity']:g}: "
                f"{_iv(best['escape'], best['escape_low'], best['escape_high'])} pts", verdict,
                best["sparsity"], best["escape"], best["escape_low"], best["escape_high"])  # fmt: skip


def c3(summary: pd.DataFrame) -> dict:
    S = _nearest(summary, 0.7)
    k1 = summary[(summary["kappa"] == "1") & (summary["sparsity"] == S)]
    if k1.empty:
        return _missing("C3", "κ=1 classes at S≈0.7")
    best = k1.loc[k1["escape"].idxmax()]
    verdict = ("supported" if best["escape_low"] > 0 else
               "not supported" if best["escape_high"] < 0 else "inconclusive")  # fmt: skip
    return _row("C3", f"best κ=1: {best['scorer']}: {_iv(best['escape'], best['escape_low'], best['escape_high'])} pts",
                verdict, S, best["escape"], best["escape_low"], best["escape_high"])  # fmt: skip


def c4(summary: pd.DataFrame) -> dict:
    S = _nearest(summary, 0.8)
    at = summary[summary["sparsity"] == S]
    k1, k2 = at[at["kappa"] == "1"], at[at["kappa"] == "2"]
    if k1.empty or k2.empty:
        return _missing("C4", "κ=1 and κ=2 classes at S≈0.8")
    best = k2.loc[k2["escape"].idxmax()]
    smooth_below = (k1["escape"] < 0).all() and (k1["escape_high"] < 0).any()
    if best["escape_low"] > 0 and smooth_below:
        verdict = "supported"
    elif best["escape_high"] < 0 or (k1["escape_low"] > 0).any():
        verdict = "not supported"
    else:
        verdict = "inconclusive"
    k1_txt = ", ".join(f"{r.scorer} {r.escape:+.2f}" for r in k1.itertuples())
    return _row("C4", f"best κ=2: {best['scorer']}: {_iv(best['escape'], best['escape_low'], best['escape_high'])} pts; "
                f"κ=1: {k1_txt}", verdict, S, best["escape"], best["escape_low"], best["escape_high"])  # fmt: skip


def c5(summary: pd.DataFrame) -> dict:
    fake = summary[summary["scorer"] == "fake_nonmonotone"].set_index("sparsity")
    grad = summary[summary["scorer"] == "gradient"].set_index("sparsity")
    common = fake.index.intersection(grad.index)
    if common.empty:
        return _missing("C5", "fake_nonmonotone or gradient")
    diff = fake.loc[common, "acc"] - grad.loc[common, "acc"]
    below = fake.loc[common, "acc"] < grad.loc[common, "acc_low"].fillna(grad.loc[common, "acc"])
    above = fake.loc[common, "acc"] > grad.loc[common, "acc_high"].fillna(grad.loc[common, "acc"])
    verdict = "supported" if below.all() else "not supported" if above.any() else "inconclusive"
    txt = ", ".join(f"S={s:g}: {d:+.2f}" for s, d in diff.items())
    return _row("C5", f"fake − gradient (pts): {txt}", verdict, value=float(diff.mean()))


def c6(summary: pd.DataFrame, study) -> dict:
    S = _nearest(summary, 0.7)
    at = summary[summary["sparsity"] == S]
    if not {"bump", "logistic_smooth"} <= set(at["scorer"]):
        return _missing("C6", "bump or logistic_smooth at S≈0.7")
    rows = study_rows(study, S)
    chaos = np.stack([study.correct_for_row(r) for r in rows[rows["scorer"] == "logistic_smooth"].itertuples()])
    bump = study.correct_for_row(next(rows[rows["scorer"] == "bump"].itertuples()))
    d = paired_escape(chaos, bump)
    b = at[at["scorer"] == "bump"].iloc[0]
    c = at[at["scorer"] == "logistic_smooth"].iloc[0]
    verdict = "supported" if d.low > 0 else "not supported" if d.high < 0 else "inconclusive"
    return _row("C6", f"bump {b['escape']:+.2f}, logistic_smooth {c['escape']:+.2f} pts; "
                f"chaos − bump {_iv(d.mean, d.low, d.high)}", verdict, S, d.mean, d.low, d.high)  # fmt: skip


def study_rows(study, S: float) -> pd.DataFrame:
    """The main-grid rows at S for the study's checkpoint (per-block, no recovery)."""
    from .sweep import read_rows

    rows = read_rows(study.sweep_path)
    keep = ((rows["ckpt_id"] == study.trained.ckpt_id) & (rows["n_test"] == len(study.test))
            & np.isclose(rows["sparsity"], S) & (rows["allocation"] == "block")
            & (rows["recovery_steps"] == 0) & (rows["tag"] == "main"))  # fmt: skip
    return rows[keep]


def ledger(summary: pd.DataFrame, study=None, claims=("C1", "C2", "C3", "C4", "C5", "C6")) -> pd.DataFrame:
    """One row per claim: the paper's statement, our measurement with its interval, the verdict."""
    fns = {"C1": c1, "C2": c2, "C3": c3, "C4": c4, "C5": c5, "C6": lambda s: c6(s, study)}
    main = summary[(summary["allocation"] == "block") & (summary["recovery_steps"] == 0)]
    return pd.DataFrame([fns[c](main) for c in claims])
