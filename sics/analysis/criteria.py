"""The criteria study's analysis (pure, no torch): where published criteria land against the
plateau Π(S), each non-monotone class against its matched control, and the rules of C1 (measured)
and C7 (clustering), written before the numbers they judge were looked at.

- **C1, measured.** Family: the weight-only criteria that are not transforms of m
  (`selection.scorers.c1_family()`: L1, fc1 norm, fc2 norm, FPGM) at every main S (0.5-0.8; the
  fine grid's rows are reported, not judged), each paired with
  magnitude on the same images. Supported iff every 95% interval lies inside ±`margin` (both
  bounds: a two-one-sided test per cell, no adjustment needed); not supported iff some difference
  lies wholly outside ±`margin` after Holm over the family, each tested against the margin on
  its own side (`summaries.holm_outside`: with 10,000 images a 0.3-point difference is
  significant against 0, and still within the margin); inconclusive otherwise.
- **C7, clustering.** Family: every published criterion that applies to the unit (gradient
  included, random excluded) at every main S, paired with Π(S). "They cluster" means: every
  criterion lands within ±`C7_MARGIN` (2 points) of the plateau. The margin is the size of the
  difference the issue measured between L1 and L2 magnitude on the reference ViT (0.7–2.1
  points), fixed before our criteria rows existed. Supported iff every 95% interval lies inside
  ±2; not supported iff some criterion lies wholly outside ±2 after Holm (tested against the
  margin, as C1); inconclusive otherwise. The spread (max − min of the criteria's mean accuracies)
  is reported beside it.
- **The adaptive selector over the fine grid.** Per S: `sics_adaptive` − each published criterion
  (Π(S) included), on the same images; seed s against seed s where both are seeded, against the
  one selection where the other is deterministic. Reported with Holm over the table's cells where
  the selections differ, not judged by a claim.
- **Matched controls.** Per class and S: class − `matched_random` of that class, seed s against
  seed s on the same images (the control swaps as many channels per block, near the cut): does
  the feature's shape matter, or only how far it moves the selection? Holm over classes × S.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from . import claims
from .stats import Paired, _paired_from_diff
from .summaries import ALPHA, Correct, holm_outside, is_stochastic, stack, with_holm

C7_MARGIN = 2.0  # points
C1_RULE = ("family: L1, fc1-norm, fc2-norm and FPGM against magnitude at every main S, paired. Supported iff "
           "every interval lies within ±margin; not supported iff one lies wholly outside ±margin after Holm "
           "(each tested against the margin on its own side); else inconclusive")  # fmt: skip
C7_RULE = (f"family: every published criterion (gradient included) against Π(S) at every main S, paired. "
           f"Supported iff every interval lies within ±{C7_MARGIN:g}; not supported iff one lies wholly "
           f"outside ±{C7_MARGIN:g} after Holm (each tested against the margin on its own side); else inconclusive")  # fmt: skip


def criteria_summary(summary: pd.DataFrame, names) -> pd.DataFrame:
    """The summary's rows of the criteria `names` (per-block allocation, default parameters), with
    Holm over them all (`sig`)."""
    rows = summary[summary["scorer"].isin(list(names)) & (summary["allocation"] == "block")]
    return with_holm(rows.reset_index(drop=True))


def at(summary: pd.DataFrame, sparsities: Iterable[float] | None) -> pd.DataFrame:
    """The summary's rows at `sparsities` (all of them when None): the verdicts judge the main S
    only, so the fine grid's rows never change a claim's family."""
    if sparsities is None:
        return summary
    return summary[summary["sparsity"].round(6).isin([round(float(s), 6) for s in sparsities])]


def _within(df: pd.DataFrame, margin: float) -> bool:
    return bool(len(df)) and bool(((df["escape_low"] > -margin) & (df["escape_high"] < margin)).all())


def within_rule(fam: pd.DataFrame, margin: float) -> str:
    """The rule C1's measured part and C7 share, on their family's rows: not supported iff some
    difference lies wholly outside ±margin after Holm; supported iff every interval lies inside;
    else (or without intervals) inconclusive."""
    if fam.empty or fam["escape_low"].isna().any():
        return "inconclusive"
    if holm_outside(fam, margin).any():
        return "not supported"
    return "supported" if _within(fam, margin) else "inconclusive"


def c1_measured(summary: pd.DataFrame, family, margin: float = 0.5) -> tuple[str, str]:
    """(verdict, measured): C1's measured part (module docstring)."""
    fam = criteria_summary(summary, family)
    if fam.empty or fam["escape_low"].isna().any():
        return "inconclusive", "no intervals"
    worst = fam.loc[fam["escape"].abs().idxmax()]
    measured = (f"largest difference from magnitude {worst['escape']:+.1f} [{worst['escape_low']:+.1f}, "
                f"{worst['escape_high']:+.1f}] ({worst['scorer']}, S={worst['sparsity']:g})")  # fmt: skip
    return within_rule(fam, margin), measured


def c7(summary: pd.DataFrame, names) -> tuple[str, str, pd.DataFrame]:
    """(verdict, measured, spread per S): C7 (module docstring)."""
    fam = criteria_summary(summary, names)
    spread = fam.groupby("sparsity").agg(lowest=("acc", "min"), highest=("acc", "max"), plateau=("plateau", "first"))
    spread["spread"] = spread["highest"] - spread["lowest"]
    if fam.empty or fam["escape_low"].isna().any():
        return "inconclusive", "no intervals", spread.reset_index()
    top = fam.loc[fam["escape"].abs().idxmax()]
    measured = (f"spread {spread['spread'].min():.1f}-{spread['spread'].max():.1f} points; furthest from Π: "
                f"{top['scorer']} {top['escape']:+.1f} [{top['escape_low']:+.1f}, {top['escape_high']:+.1f}] "
                f"at S={top['sparsity']:g}")  # fmt: skip
    return within_rule(fam, C7_MARGIN), measured, spread.reset_index()


def _difference(a: pd.DataFrame, b: pd.DataFrame, correct: Correct, a_seeded: bool,
                b_seeded: bool) -> tuple[int, Paired] | None:  # fmt: skip
    """a − b on the same images (points, `_paired_from_diff`): seed s against seed s where both
    are seeded, else every seed of the seeded one against the other's one selection; None when
    that leaves fewer than two seeds of a seeded scorer."""
    if a_seeded and b_seeded:
        seeds = sorted(set(a["seed"]) & set(b["seed"]))
        a, b = (g[g["seed"].isin(seeds)] for g in (a, b))
    else:
        seeds = sorted((b if b_seeded else a)["seed"])
    if (a_seeded or b_seeded) and len(seeds) < 2:
        return None
    d = stack(correct, a).astype(np.float64) - stack(correct, b)  # [seeds or 1, images], broadcast
    return len(seeds), _paired_from_diff(d * 100.0, stochastic=a_seeded or b_seeded)


def versus_table(rows: pd.DataFrame, correct: Correct, scorer: str, others: Iterable[str]) -> pd.DataFrame:
    """`scorer` − each of `others` per S, at every S where both ran (one-shot, per-block
    allocation, main tag). Holm over the table's cells where the two selections differ; a cell
    where they are the same for every seed (e.g. the adaptive selector is magnitude below its
    first boundary) is exactly 0 and stays out of the family (`identical`). Columns: scorer,
    versus, sparsity, n_seeds, mean, low, high, p, identical, p_holm, sig (points)."""
    rows = rows[(rows["allocation"] == "block") & (rows["recovery_steps"] == 0) & (rows["tag"] == "main")]
    a_seeded = is_stochastic(scorer, rows)
    out = []
    for S, at_s in rows.groupby("sparsity"):
        a = at_s[at_s["scorer"] == scorer]
        for other in others:
            b = at_s[at_s["scorer"] == other]
            if other == scorer or a.empty or b.empty:
                continue
            got = _difference(a, b, correct, a_seeded, is_stochastic(other, rows))
            if got is None:
                continue
            n, d = got
            same = set(a["mask_hash"]) == set(b["mask_hash"]) and a["mask_hash"].nunique() == 1
            out.append(dict(scorer=scorer, versus=other, sparsity=float(S), n_seeds=n, mean=d.mean,
                            low=d.low, high=d.high, p=d.p_value, identical=same))  # fmt: skip
    cols = ["scorer", "versus", "sparsity", "n_seeds", "mean", "low", "high", "p", "identical"]
    df = pd.DataFrame(out, columns=cols)
    tested = with_holm(df[~df["identical"].astype(bool)], p_col="p", alpha=ALPHA)
    df = df.join(tested[["p_holm", "sig"]])
    return df.fillna({"p_holm": 1.0, "sig": ""}).astype({"p_holm": float})


def matched_table(rows: pd.DataFrame, correct, classes, control: str = "matched_random") -> pd.DataFrame:
    """Each class's escape beyond its matched control, per S (module docstring). Columns: scorer,
    sparsity, n_seeds, mean, low, high, p, p_holm, sig (points)."""
    out = []
    for (scorer, S), cls in rows[rows["scorer"].isin(list(classes))].groupby(["scorer", "sparsity"], sort=False):
        ctrl = rows[(rows["scorer"] == control) & (rows["sparsity"] == S)
                    & rows["params"].str.contains(f'"of": "{scorer}"', regex=False)]  # fmt: skip
        seeds = sorted(set(cls["seed"]) & set(ctrl["seed"]))
        if len(seeds) < 2:
            continue
        a = stack(correct, cls.set_index("seed").loc[seeds].reset_index())
        b = stack(correct, ctrl.set_index("seed").loc[seeds].reset_index())
        d = _paired_from_diff((a.astype(np.float64) - b) * 100.0)
        out.append(dict(scorer=scorer, sparsity=float(S), n_seeds=len(seeds), mean=d.mean, low=d.low,
                        high=d.high, p=d.p_value))  # fmt: skip
    df = pd.DataFrame(out, columns=["scorer", "sparsity", "n_seeds", "mean", "low", "high", "p"])
    return with_holm(df, p_col="p", alpha=ALPHA) if len(df) else df.assign(p_holm=[], sig=[])


def ledger_rows(summary: pd.DataFrame, names, family, margin: float = claims.MARGIN,
                sparsities: Iterable[float] | None = None) -> list[dict]:  # fmt: skip
    """C1 with both parts (by construction, measured) and C7 at `sparsities` (the main S): ledger
    rows (`claims.ledger`'s columns)."""
    main = at(summary[(summary["allocation"] == "block") & (summary["recovery_steps"] == 0)], sparsities)
    built = claims.c1(main)
    v1, m1 = c1_measured(main, family, margin)
    fam1 = criteria_summary(main, family)
    verdict = v1 if built["verdict"] == "supported" else built["verdict"]
    c1 = {**built, "measured": f"{built['measured']}; measured: {m1}", "verdict": verdict,
          "basis": "construction + measured", "family": ";".join(f"{r.scorer}@{r.sparsity:g}" for r in fam1.itertuples()),
          "rule": f"{built['rule']}. Measured: {C1_RULE}"}  # fmt: skip
    v7, m7, _ = c7(main, names)
    fam7 = criteria_summary(main, names)
    row7 = claims._row("C7", m7, v7, family=fam7)
    return [c1, {**row7, "rule": C7_RULE}]


def ledger(summary: pd.DataFrame, names, family, margin: float = claims.MARGIN,
           sparsities: Iterable[float] | None = None) -> pd.DataFrame:  # fmt: skip
    """The criteria study's ledger: C1 (both parts) and C7 at `sparsities` (`ledger_rows`)."""
    return pd.DataFrame(ledger_rows(summary, names, family, margin, sparsities))
