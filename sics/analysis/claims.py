"""The paper's six claims, its numbers, and the written rules that turn our analysis into verdicts.

Only the paper's own numbers are typed in here (converted to accuracy points); everything else
comes from the analysis (`sics.analysis`). Every rule is a pure function of the summary (one row
per class and S, with paired escape intervals) and, for C5 and C6, of paired comparisons between
two scorers on the same images. The same rules judge one training run (a summary of its seeds)
and a recipe (a summary of its runs, `sics.analysis.runs`): only the intervals differ.

One principle for every claim, with the equivalence margin `margin` (default 0.5 points):

- An effect counts as **present** only if its interval lies wholly beyond the margin (an escape:
  above +margin; a fall: below −margin). Over a family of tests (named in each rule), "wholly
  beyond" is decided by Holm's step-down procedure on the test of "the effect equals the
  margin" (`summaries.holm_beyond`), so the family-wise error is at most 5%.
- An effect counts as **absent** only if its interval lies wholly on the near side of the
  margin. Where a claim needs it absent everywhere, that is an intersection-union test (each
  bound at 95%, no adjustment). Where a claim is refuted by its absence somewhere, the absence
  is decided by Holm's procedure like a presence.
- Otherwise the claim is **inconclusive**: low power never reads as support or as refutation.
- A class whose interval cannot be computed (one seed of a stochastic scorer, one run of a
  recipe) supports and refutes nothing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..selection.scorers import NON_MONOTONE_KAPPAS
from .summaries import ALPHA, holm_beyond, is_stochastic, nearest, negate, paired_table

MARGIN = 0.5  # equivalence margin in accuracy points

CLAIMS = {
    "C1": ("Every rank-monotone scorer gives the same selection and accuracy Π(S).", "identical masks"),
    "C2": ("S < 0.65: the plateau is already optimal; non-monotone features match it or do worse.", "no escape"),
    "C3": ("S ≈ 0.7: rank-aligned smooth non-monotone features escape, best by +6.6 points.", "+6.6"),
    "C4": ("S = 0.8: only raw high-frequency features escape (+2.6); smooth ones fall below.", "+2.6"),
    "C5": ("A fake non-monotone scorer derived from magnitude does worse than the gradient baseline.", "fake < gradient"),
    "C6": ("A Gaussian bump escapes by only +0.6 against +4.6 for the chaos-derived feature.", "+0.6 vs +4.6"),
}  # fmt: skip
# beyond the six, from the abstract: read by the criteria study (`sics.analysis.criteria`), not
# part of the default ledger
MORE_CLAIMS = {
    "C7": ("SICS explains the clustering of diverse pruning methods: published criteria land on the plateau.",
           "clustering"),
}  # fmt: skip
PAPER_C3, PAPER_C4 = 6.6, 2.6  # best escapes, points
PAPER_BUMP, PAPER_CHAOS = 0.6, 4.6  # C6, converted from fractions (+0.006 / +0.046) to points

# The paired comparisons C5 and C6 read: (scorer, reference), each difference scorer − reference
# on the same images. Tables 4 and 5 show the same pairs.
FAKE, GRADIENT = "fake_nonmonotone", "gradient"  # C5
CHAOS, BUMP = "logistic_smooth", "bump"  # C6
PAIRS = {"C5": (FAKE, GRADIENT), "C6": (CHAOS, BUMP)}


def claim_pairs(rows: pd.DataFrame, correct) -> dict[str, pd.DataFrame]:
    """The comparisons of `PAIRS` per S (`summaries.paired_table`). A paired table needs a
    deterministic reference: where the reference is stochastic (gradient), the difference is
    computed the other way round and negated."""
    out = {}
    for claim, (scorer, reference) in PAIRS.items():
        if is_stochastic(reference, rows) and not is_stochastic(scorer, rows):
            out[claim] = negate(paired_table(rows, correct, reference, scorer))
        else:
            out[claim] = paired_table(rows, correct, scorer, reference)
    return out
PAPER_BOUNDARIES = (0.65, 0.75)
PAPER_REGIMES = {0.5: ("0", "plateau optimal"), 0.6: ("0", "plateau optimal"),
                 0.7: ("1", "smooth escapes, best +6.6"), 0.8: ("2", "only raw escapes, +2.6")}  # fmt: skip

RULES = {
    "C1": "holds by construction (m, m², log m are strictly increasing transforms of one float64 m); "
          "checked: identical κ=0 masks at every S",
    "C2": "family: κ=1/2 classes at every S < 0.65 (Holm). Not supported iff some escape lies wholly "
          "above +margin; supported iff every upper bound < +margin; else inconclusive",
    "C3": "family: κ=1 classes at S≈0.7 (Holm). Supported iff some escape lies wholly above +margin; "
          "not supported iff every upper bound < +margin; else inconclusive",
    "C4": "family: κ=1/2 classes at S≈0.8 (Holm). Supported iff some κ=2 escape lies wholly above "
          "+margin and every κ=1 upper bound < −margin; not supported iff every κ=2 upper bound < "
          "+margin, or some κ=1 escape lies wholly above −margin (a smooth class that does not fall "
          "below); else inconclusive",
    "C5": "paired fake − gradient on the same images, family: every S (Holm). Supported iff every "
          "upper bound < −margin; not supported iff at some S the difference lies wholly above "
          "−margin; else inconclusive",
    "C6": "paired logistic_smooth − bump on the same images at S≈0.7. Supported iff its lower bound "
          "> +margin; not supported iff its upper bound < +margin; else inconclusive",
}  # fmt: skip
TABLE_OF = {"C1": "Table 1", "C2": "Tables 2-3", "C3": "Tables 2-3", "C4": "Tables 2-3",
            "C5": "Table 4", "C6": "Table 5", "C7": "criteria table"}  # fmt: skip
VERDICTS = ("supported", "smaller than the paper", "not the paper's size", "not supported", "inconclusive")
# the paper's numbers the size verdicts compare with (points): C3's and C4's best escape, C6's
# chaos − bump difference
PAPER_VALUE = {"C3": PAPER_C3, "C4": PAPER_C4, "C6": PAPER_CHAOS - PAPER_BUMP}
SIZE_RULE = ("Size: where the sign rule says supported but the paper's value lies above the interval, "
             "'smaller than the paper'; where the rule says inconclusive, no effect beyond the margin is "
             "shown (the lower bound is below +margin) and the paper's value lies outside the interval, "
             "'not the paper's size'")


def paper_regime(S: float) -> tuple[str, str]:
    """The regime the paper states for S (its boundaries: 0.65 and 0.75)."""
    if S in PAPER_REGIMES:
        return PAPER_REGIMES[S]
    lo, hi = PAPER_BOUNDARIES
    return ("0", "plateau optimal") if S < lo else ("1", "smooth escapes") if S <= hi else ("2", "only raw escapes")


def _iv(m: float, lo: float, hi: float) -> str:
    if np.isnan(lo) or np.isnan(hi):
        return f"{m:+.2f} [no interval]"
    return f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _row(cid: str, measured: str, verdict: str, S=None, value=np.nan, low=np.nan, high=np.nan,
         basis: str = "measured", family: pd.DataFrame | None = None, margin: float = MARGIN) -> dict:  # fmt: skip
    """One ledger row; `family` (the rows the claim tested) is recorded as scorer@S names."""
    statement, paper = {**CLAIMS, **MORE_CLAIMS}[cid]
    verdict, inside = sized(cid, verdict, low, high, margin)
    assert verdict in VERDICTS, verdict
    tested = "" if family is None else ";".join(f"{r.scorer}@{r.sparsity:g}" for r in family.itertuples())
    return dict(claim=cid, statement=statement, paper=paper, where=TABLE_OF[cid], sparsity=S,
                measured=measured, value=value, low=low, high=high, verdict=verdict, basis=basis,
                family=tested, rule=RULES.get(cid, "") + (f". {SIZE_RULE}" if cid in PAPER_VALUE else ""),
                paper_inside=inside)  # fmt: skip


def sized(cid: str, verdict: str, low: float, high: float, margin: float = MARGIN) -> tuple[str, object]:
    """(the verdict judged in size as well as sign, whether the paper's value lies in [low, high]).

    `SIZE_RULE`: a "supported" whose interval lies wholly below the paper's value becomes
    "smaller than the paper"; an "inconclusive" whose lower bound is below the margin (no effect
    of consequence shown) and whose interval excludes the paper's value becomes "not the paper's
    size". Claims without a number keep their verdict."""
    paper = PAPER_VALUE.get(cid)
    if paper is None or not (np.isfinite(low) and np.isfinite(high)):
        return verdict, np.nan
    inside = bool(low <= paper <= high)
    if verdict == "supported" and high < paper:
        return "smaller than the paper", inside
    if verdict == "inconclusive" and not inside and low < margin:
        return "not the paper's size", inside
    return verdict, inside


def _missing(cid: str, what: str) -> dict:
    return _row(cid, f"not measured ({what} missing from this sweep)", "inconclusive")


def _below(df: pd.DataFrame, bound: float, col: str = "escape_high") -> bool:
    """Every row's upper bound is below `bound` (NaN bounds fail: no interval, no support)."""
    return bool(len(df)) and bool((df[col] < bound).all())


def _verdict(*rules: tuple[bool, str]) -> str:
    """The verdict of the first rule that holds, in the order the claim's rule states them."""
    return next((verdict for holds, verdict in rules if holds), "inconclusive")


def _best(df: pd.DataFrame) -> pd.Series:
    return df.loc[df["escape"].idxmax()]


def _txt(r) -> str:
    return f"{r['scorer']} {_iv(r['escape'], r['escape_low'], r['escape_high'])}"


def c1(summary: pd.DataFrame, **_) -> dict:
    k0 = summary[summary["kappa"] == "0"]
    compared = k0.groupby("sparsity")["scorer"].nunique()
    k0 = k0[k0["sparsity"].isin(compared[compared >= 2].index)]  # an S with one κ=0 scorer tells nothing
    if k0.empty:
        return _missing("C1", "κ=0 scorers")
    same = k0.groupby("sparsity")["mask_hash"].nunique().eq(1)
    spread = k0.groupby("sparsity")["acc"].agg(lambda a: a.max() - a.min()).max()
    verdict = "supported" if same.all() else "not supported"
    return _row("C1", f"by construction; identical masks at {int(same.sum())}/{len(same)} S, "
                f"max accuracy spread {spread:.2f} pts", verdict, value=float(spread),
                basis="construction")  # fmt: skip


def c2(summary: pd.DataFrame, margin: float = MARGIN, alpha: float = ALPHA, **_) -> dict:
    fam = summary[summary["kappa"].isin(NON_MONOTONE_KAPPAS) & (summary["sparsity"] < 0.65)]
    if fam.empty:
        return _missing("C2", "non-monotone classes at S < 0.65")
    up = holm_beyond(fam, margin, alpha=alpha)
    best = _best(fam)
    hi = fam.loc[fam["escape_high"].idxmax()] if fam["escape_high"].notna().any() else best
    verdict = _verdict((up.any(), "not supported"), (_below(fam, margin), "supported"))
    return _row("C2", f"{len(fam)} tests; best {_txt(best)} at S={best['sparsity']:g}; "
                f"{int(up.sum())} wholly above +{margin:g} after Holm; highest upper bound "
                f"{hi['escape_high']:+.2f}", verdict, best["sparsity"], best["escape"],
                best["escape_low"], best["escape_high"], family=fam)  # fmt: skip


def c3(summary: pd.DataFrame, margin: float = MARGIN, alpha: float = ALPHA, **_) -> dict:
    S = nearest(summary["sparsity"], 0.7)
    fam = summary[(summary["kappa"] == "1") & (summary["sparsity"] == S)]
    if fam.empty:
        return _missing("C3", "κ=1 classes at S≈0.7")
    up = holm_beyond(fam, margin, alpha=alpha)
    best = _best(fam)
    verdict = _verdict((up.any(), "supported"), (_below(fam, margin), "not supported"))
    return _row("C3", f"best κ=1: {_txt(best)} pts (paper +{PAPER_C3}); "
                f"{int(up.sum())}/{len(fam)} wholly above +{margin:g} after Holm", verdict, S,
                best["escape"], best["escape_low"], best["escape_high"], family=fam, margin=margin)  # fmt: skip


def c4(summary: pd.DataFrame, margin: float = MARGIN, alpha: float = ALPHA, **_) -> dict:
    S = nearest(summary["sparsity"], 0.8)
    at = summary[summary["sparsity"] == S]
    fam = at[at["kappa"].isin(NON_MONOTONE_KAPPAS)]
    if not ((fam["kappa"] == "1").any() and (fam["kappa"] == "2").any()):
        return _missing("C4", "κ=1 and κ=2 classes at S≈0.8")
    is1, is2 = (fam["kappa"] == "1").to_numpy(), (fam["kappa"] == "2").to_numpy()
    k1, k2 = fam[is1], fam[is2]
    raw_up = holm_beyond(fam, margin, alpha=alpha) & is2
    smooth_not_below = holm_beyond(fam, -margin, alpha=alpha) & is1
    best = _best(k2)
    verdict = _verdict((raw_up.any() and _below(k1, -margin), "supported"),
                       (_below(k2, margin) or smooth_not_below.any(), "not supported"))
    k1_txt = "; ".join(_txt(r) for _, r in k1.iterrows())
    return _row("C4", f"best κ=2: {_txt(best)} pts (paper +{PAPER_C4}); κ=1: {k1_txt}", verdict,
                S, best["escape"], best["escape_low"], best["escape_high"], family=fam, margin=margin)  # fmt: skip


def c5(summary: pd.DataFrame, pairs: dict | None = None, margin: float = MARGIN, alpha: float = ALPHA,
       **_) -> dict:  # fmt: skip
    """`pairs["C5"]`: fake_nonmonotone − gradient per S (`analysis.negate(paired_table(...))`)."""
    d = (pairs or {}).get("C5")
    if d is None or d.empty:
        return _missing("C5", f"{FAKE} or {GRADIENT}")
    not_worse = holm_beyond(d, -margin, prefix="mean", alpha=alpha)
    verdict = _verdict((_below(d, -margin, col="high"), "supported"), (not_worse.any(), "not supported"))
    txt = "; ".join(f"S={r.sparsity:g}: {_iv(r.mean, r.low, r.high)}" for r in d.itertuples())
    worst = d.loc[d["high"].idxmax()] if d["high"].notna().any() else d.iloc[0]
    return _row("C5", f"fake − gradient, paired (pts): {txt}", verdict, worst["sparsity"],
                worst["mean"], worst["low"], worst["high"])  # fmt: skip


def c6(summary: pd.DataFrame, pairs: dict | None = None, margin: float = MARGIN, **_) -> dict:
    """`pairs["C6"]`: logistic_smooth − bump per S (`analysis.paired_table`)."""
    d = (pairs or {}).get("C6")
    S = nearest(summary["sparsity"], 0.7)
    if d is None or d.empty or S is None or not np.isclose(d["sparsity"], S).any():
        return _missing("C6", f"{BUMP} or {CHAOS} at S≈0.7")
    r = d[np.isclose(d["sparsity"], S)].iloc[0]
    at = summary[summary["sparsity"] == S].set_index("scorer")
    esc = {n: at.loc[n, "escape"] if n in at.index else np.nan for n in (BUMP, CHAOS)}
    verdict = _verdict((r["low"] > margin, "supported"), (r["high"] < margin, "not supported"))
    return _row("C6", f"escape: bump {esc['bump']:+.2f}, logistic_smooth {esc['logistic_smooth']:+.2f} "
                f"pts (paper +{PAPER_BUMP} / +{PAPER_CHAOS}); chaos − bump {_iv(r['mean'], r['low'], r['high'])}",
                verdict, S, r["mean"], r["low"], r["high"], margin=margin)  # fmt: skip


RULE_FNS = {"C1": c1, "C2": c2, "C3": c3, "C4": c4, "C5": c5, "C6": c6}


def ledger(summary: pd.DataFrame, pairs: dict | None = None, claims=tuple(CLAIMS), *,
           margin: float = MARGIN, alpha: float = ALPHA) -> pd.DataFrame:  # fmt: skip
    """One row per claim: the paper's statement, our measurement with its interval, the verdict.

    `summary` should hold the protocol's main rows only (per-block allocation, no recovery,
    default parameters); `pairs` the paired comparisons that C5 and C6 read.

    `robust` is each verdict again with every escape replaced by its 20% trimmed mean over seeds
    (`robust_view`; empty where the summary has none): a sensitivity check that never replaces
    the verdict. Where it differs, the ledger says so and so does the README's matrix.
    """
    main = summary
    if "allocation" in summary:
        main = summary[(summary["allocation"] == "block") & (summary["recovery_steps"] == 0)]
    out = pd.DataFrame([RULE_FNS[c](main, pairs=pairs, margin=margin, alpha=alpha) for c in claims])
    trimmed = robust_view(main)
    out["robust"] = "" if trimmed is None else [
        RULE_FNS[c](trimmed, pairs=pairs, margin=margin, alpha=alpha)["verdict"] for c in claims]
    return out


# the summary's escape columns and the trimmed mean's in their place (`summaries.summarize`)
ROBUST_COLUMNS = {"escape": "robust", "escape_low": "robust_low", "escape_high": "robust_high",
                  "escape_se_seed": "robust_se_seed", "escape_se_image": "robust_se_image",
                  "n_seeds": "robust_n"}  # fmt: skip


def robust_view(summary: pd.DataFrame) -> pd.DataFrame | None:
    """The summary with every escape replaced by its 20% trimmed mean over seeds, so that the
    same rules judge it; None where the summary has no trimmed means."""
    if summary.empty or not set(ROBUST_COLUMNS.values()) <= set(summary.columns):
        return None
    return summary.assign(**{a: summary[b] for a, b in ROBUST_COLUMNS.items()})


def merged(ledger: pd.DataFrame, extra: pd.DataFrame | None) -> pd.DataFrame:
    """`ledger` with the rows of `extra` (the criteria study's C1 and C7) in place of its rows of the
    same claims, in claim order; an absent or empty `extra` leaves it as it is."""
    if extra is None or extra.empty:
        return ledger
    out = pd.concat([ledger[~ledger["claim"].isin(extra["claim"])], extra], ignore_index=True)
    order = {c: i for i, c in enumerate([*CLAIMS, *MORE_CLAIMS])}
    out = out.iloc[np.argsort(out["claim"].map(order).fillna(len(order)).to_numpy(), kind="stable")]
    return out[[*ledger.columns, *(c for c in extra.columns if c not in ledger.columns)]].reset_index(drop=True)
