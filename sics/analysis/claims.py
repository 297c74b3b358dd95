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

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .. import paper
from ..selection.scorers import NON_MONOTONE_KAPPAS
from .summaries import ALPHA, holm_beyond, is_stochastic, nearest, negate, paired_table

MARGIN = 0.5  # equivalence margin in accuracy points

# The paired comparisons C5 and C6 read: (scorer, reference), each difference scorer − reference
# on the same images. Tables 4 and 5 show the same pairs.
FAKE, GRADIENT = "fake_nonmonotone", "gradient"  # C5
CHAOS, BUMP = "logistic_smooth", "bump"  # C6


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
VERDICTS = ("supported", "smaller than the paper", "not the paper's size", "not supported", "inconclusive")
SIZE_RULE = ("Size: where the sign rule says supported but the paper's value lies above the interval, "
             "'smaller than the paper'; where the rule says inconclusive, no effect beyond the margin is "
             "shown (the lower bound is below +margin) and the paper's value lies outside the interval, "
             "'not the paper's size'")


def paper_regime(S: float) -> tuple[str, str]:
    """The κ and regime the paper states for S (its boundaries, `paper.BOUNDARIES`)."""
    if S < paper.BOUNDARY_SMOOTH:
        return "0", "plateau optimal"
    if S <= paper.BOUNDARY_RAW:
        best = f", best +{paper.SMOOTH_ESCAPE}" if np.isclose(S, paper.S_SMOOTH) else ""
        return "1", f"smooth escapes{best}"
    return "2", "only raw escapes" + (f", +{paper.RAW_ESCAPE}" if np.isclose(S, paper.S_RAW) else "")


def _iv(m: float, lo: float, hi: float) -> str:
    if np.isnan(lo) or np.isnan(hi):
        return f"{m:+.2f} [no interval]"
    return f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _row(cid: str, measured: str, verdict: str, S=None, value=np.nan, low=np.nan, high=np.nan,
         basis: str = "measured", family: pd.DataFrame | None = None, margin: float = MARGIN) -> dict:  # fmt: skip
    """One ledger row; `family` (the rows the claim tested) is recorded as scorer@S names."""
    claim = ALL_CLAIMS[cid]
    verdict, inside = sized(cid, verdict, low, high, margin)
    assert verdict in VERDICTS, verdict
    tested = "" if family is None else ";".join(f"{r.scorer}@{r.sparsity:g}" for r in family.itertuples())
    rule = claim.rule + (f". {SIZE_RULE}" if claim.value is not None else "")
    return dict(claim=cid, statement=claim.statement, paper=claim.paper, where=claim.table, sparsity=S,
                measured=measured, value=value, low=low, high=high, verdict=verdict, basis=basis,
                family=tested, rule=rule, paper_inside=inside)  # fmt: skip


def sized(cid: str, verdict: str, low: float, high: float, margin: float = MARGIN) -> tuple[str, object]:
    """(the verdict judged in size as well as sign, whether the paper's value lies in [low, high]).

    `SIZE_RULE`: a "supported" whose interval lies wholly below the paper's value becomes
    "smaller than the paper"; an "inconclusive" whose lower bound is below the margin (no effect
    of consequence shown) and whose interval excludes the paper's value becomes "not the paper's
    size". Claims without a number keep their verdict."""
    value = ALL_CLAIMS[cid].value
    if value is None or not (np.isfinite(low) and np.isfinite(high)):
        return verdict, np.nan
    inside = bool(low <= value <= high)
    if verdict == "supported" and high < value:
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
    """The row of the largest escape (the first row where no escape could be estimated)."""
    return df.loc[df["escape"].idxmax()] if df["escape"].notna().any() else df.iloc[0]


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
    fam = summary[summary["kappa"].isin(NON_MONOTONE_KAPPAS) & (summary["sparsity"] < paper.BOUNDARY_SMOOTH)]
    if fam.empty:
        return _missing("C2", f"non-monotone classes at S < {paper.BOUNDARY_SMOOTH}")
    up = holm_beyond(fam, margin, alpha=alpha)
    best = _best(fam)
    hi = fam.loc[fam["escape_high"].idxmax()] if fam["escape_high"].notna().any() else best
    verdict = _verdict((up.any(), "not supported"), (_below(fam, margin), "supported"))
    return _row("C2", f"{len(fam)} tests; best {_txt(best)} at S={best['sparsity']:g}; "
                f"{int(up.sum())} wholly above +{margin:g} after Holm; highest upper bound "
                f"{hi['escape_high']:+.2f}", verdict, best["sparsity"], best["escape"],
                best["escape_low"], best["escape_high"], family=fam)  # fmt: skip


def c3(summary: pd.DataFrame, margin: float = MARGIN, alpha: float = ALPHA, **_) -> dict:
    S = nearest(summary["sparsity"], paper.S_SMOOTH)
    fam = summary[(summary["kappa"] == "1") & (summary["sparsity"] == S)]
    if fam.empty:
        return _missing("C3", f"κ=1 classes at S≈{paper.S_SMOOTH}")
    up = holm_beyond(fam, margin, alpha=alpha)
    best = _best(fam)
    verdict = _verdict((up.any(), "supported"), (_below(fam, margin), "not supported"))
    return _row("C3", f"best κ=1: {_txt(best)} pts (paper +{paper.SMOOTH_ESCAPE}); "
                f"{int(up.sum())}/{len(fam)} wholly above +{margin:g} after Holm", verdict, S,
                best["escape"], best["escape_low"], best["escape_high"], family=fam, margin=margin)  # fmt: skip


def c4(summary: pd.DataFrame, margin: float = MARGIN, alpha: float = ALPHA, **_) -> dict:
    S = nearest(summary["sparsity"], paper.S_RAW)
    at = summary[summary["sparsity"] == S]
    fam = at[at["kappa"].isin(NON_MONOTONE_KAPPAS)]
    if not ((fam["kappa"] == "1").any() and (fam["kappa"] == "2").any()):
        return _missing("C4", f"κ=1 and κ=2 classes at S≈{paper.S_RAW}")
    is1, is2 = (fam["kappa"] == "1").to_numpy(), (fam["kappa"] == "2").to_numpy()
    k1, k2 = fam[is1], fam[is2]
    raw_up = holm_beyond(fam, margin, alpha=alpha) & is2
    smooth_not_below = holm_beyond(fam, -margin, alpha=alpha) & is1
    best = _best(k2)
    verdict = _verdict((raw_up.any() and _below(k1, -margin), "supported"),
                       (_below(k2, margin) or smooth_not_below.any(), "not supported"))
    k1_txt = "; ".join(_txt(r) for _, r in k1.iterrows())
    return _row("C4", f"best κ=2: {_txt(best)} pts (paper +{paper.RAW_ESCAPE}); κ=1: {k1_txt}", verdict,
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
    S = nearest(summary["sparsity"], paper.S_SMOOTH)
    if d is None or d.empty or S is None or not np.isclose(d["sparsity"], S).any():
        return _missing("C6", f"{BUMP} or {CHAOS} at S≈{paper.S_SMOOTH}")
    r = d[np.isclose(d["sparsity"], S)].iloc[0]
    at = summary[summary["sparsity"] == S].set_index("scorer")
    esc = {n: at.loc[n, "escape"] if n in at.index else np.nan for n in (BUMP, CHAOS)}
    verdict = _verdict((r["low"] > margin, "supported"), (r["high"] < margin, "not supported"))
    return _row("C6", f"escape: bump {esc['bump']:+.2f}, logistic_smooth {esc['logistic_smooth']:+.2f} "
                f"pts (paper +{paper.BUMP_ESCAPE} / +{paper.CHAOS_ESCAPE}); chaos − bump {_iv(r['mean'], r['low'], r['high'])}",
                verdict, S, r["mean"], r["low"], r["high"], margin=margin)  # fmt: skip


@dataclass(frozen=True)
class Claim:
    """One of the paper's claims: what it states, the paper's number where it gives one (the size
    rule compares with it), where the companion shows it, and the written rule with its function
    (None: judged by the criteria study, `sics.analysis.criteria`). `pair`: the (scorer, reference)
    whose paired difference the rule reads."""

    id: str
    statement: str
    paper: str
    table: str
    rule: str
    judge: Callable[..., dict] | None = None
    value: float | None = None
    pair: tuple[str, str] | None = None


_S1, _S2, _SS, _SR = paper.BOUNDARY_SMOOTH, paper.BOUNDARY_RAW, paper.S_SMOOTH, paper.S_RAW
CLAIMS: dict[str, Claim] = {c.id: c for c in (
    Claim("C1", "Every rank-monotone scorer gives the same selection and accuracy Π(S).", "identical masks",
          "Table 1", "holds by construction (m, m², log m are strictly increasing transforms of one float64 "
          "m); checked: identical κ=0 masks at every S", c1),
    Claim("C2", f"S < {_S1}: the plateau is already optimal; non-monotone features match it or do worse.",
          "no escape", "Tables 2-3",
          f"family: κ=1/2 classes at every S < {_S1} (Holm). Not supported iff some escape lies wholly above "
          "+margin; supported iff every upper bound < +margin; else inconclusive", c2),
    Claim("C3", f"S ≈ {_SS}: rank-aligned smooth non-monotone features escape, best by +{paper.SMOOTH_ESCAPE} "
          "points.", f"+{paper.SMOOTH_ESCAPE}", "Tables 2-3",
          f"family: κ=1 classes at S≈{_SS} (Holm). Supported iff some escape lies wholly above +margin; not "
          "supported iff every upper bound < +margin; else inconclusive", c3, paper.SMOOTH_ESCAPE),
    Claim("C4", f"S = {_SR}: only raw high-frequency features escape (+{paper.RAW_ESCAPE}); smooth ones fall "
          "below.", f"+{paper.RAW_ESCAPE}", "Tables 2-3",
          f"family: κ=1/2 classes at S≈{_SR} (Holm). Supported iff some κ=2 escape lies wholly above +margin "
          "and every κ=1 upper bound < −margin; not supported iff every κ=2 upper bound < +margin, or some "
          "κ=1 escape lies wholly above −margin (a smooth class that does not fall below); else inconclusive",
          c4, paper.RAW_ESCAPE),
    Claim("C5", "A fake non-monotone scorer derived from magnitude does worse than the gradient baseline.",
          "fake < gradient", "Table 4",
          "paired fake − gradient on the same images, family: every S (Holm). Supported iff every upper "
          "bound < −margin; not supported iff at some S the difference lies wholly above −margin; else "
          "inconclusive", c5, pair=(FAKE, GRADIENT)),
    Claim("C6", f"A Gaussian bump escapes by only +{paper.BUMP_ESCAPE} against +{paper.CHAOS_ESCAPE} for the "
          "chaos-derived feature.", f"+{paper.BUMP_ESCAPE} vs +{paper.CHAOS_ESCAPE}", "Table 5",
          f"paired logistic_smooth − bump on the same images at S≈{_SS}. Supported iff its lower bound > "
          "+margin; not supported iff its upper bound < +margin; else inconclusive", c6,
          round(paper.CHAOS_ESCAPE - paper.BUMP_ESCAPE, 10), pair=(CHAOS, BUMP)),
)}  # fmt: skip
# beyond the six, from the abstract: read by the criteria study (`sics.analysis.criteria`), not
# part of the default ledger
MORE_CLAIMS: dict[str, Claim] = {"C7": Claim(
    "C7", "SICS explains the clustering of diverse pruning methods: published criteria land on the plateau.",
    "clustering", "criteria table", "")}  # fmt: skip
ALL_CLAIMS = {**CLAIMS, **MORE_CLAIMS}
PAIRS = {c.id: c.pair for c in CLAIMS.values() if c.pair}


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
    out = pd.DataFrame([CLAIMS[c].judge(main, pairs=pairs, margin=margin, alpha=alpha) for c in claims])
    trimmed = robust_view(main)
    out["robust"] = "" if trimmed is None else [
        CLAIMS[c].judge(trimmed, pairs=pairs, margin=margin, alpha=alpha)["verdict"] for c in claims]
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
    order = {c: i for i, c in enumerate(ALL_CLAIMS)}
    out = out.iloc[np.argsort(out["claim"].map(order).fillna(len(order)).to_numpy(), kind="stable")]
    return out[[*ledger.columns, *(c for c in extra.columns if c not in ledger.columns)]].reset_index(drop=True)
