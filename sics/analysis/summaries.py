"""Measurement, apart from presentation: sweep rows + per-image correctness -> summaries,
paired comparisons, family-wise adjusted tests and regime boundaries.

Every function here is pure: it reads data frames and arrays and returns data frames, with no
`Study`, model or file in sight, so the whole analysis recomputes from a results bundle
(`sweep.csv` plus the per-image correctness of every selection) and is tested on constructed data.

- `correct` maps `result_key(row)` = (mask_hash, recovery_steps, recovery seed) to a bool vector
  over the test images: the per-image correctness of that selection (after recovery fine-tuning,
  which is seeded by the row's seed). Rows with equal keys share one vector. Where the items come
  in clusters (the KV study's predicted bytes, `window` per context) it holds each cluster's
  accuracy instead, a float in [0, 1] (`per_cluster`): a context is then what an image is, and
  every interval is clustered by context.
- The plateau Π(S) is magnitude's selection under the same allocation and recovery; its rows
  must be among `rows` (the sweep helpers add them).
- Escape intervals are `stats.paired_escape`: between-seed and between-image variance combined,
  paired on the same images. Significance across several comparisons is family-wise controlled
  with Holm's step-down procedure (`with_holm`); which comparisons form a family is stated beside
  each use (claims.py, tables, figures).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..selection.scorers import NON_MONOTONE_KAPPAS, SCORERS, get_scorer
from .stats import holm, mean_ci, p_at, paired_escape, trimmed_escape

Correct = Mapping[tuple[str, int, int], np.ndarray]
GROUP = ["scorer", "sparsity", "allocation", "recovery_steps", "params"]
PLATEAU_SCORER = "magnitude"
ALPHA = 0.05
# Classes whose escape tables and figures test: every feature class but κ=0 (escape 0 by construction).
ESCAPE_KAPPAS = (*NON_MONOTONE_KAPPAS, "control")


def per_cluster(correct: np.ndarray, size: int) -> np.ndarray:
    """Per-item correctness as the accuracy of each run of `size` consecutive items (a context's
    predicted bytes), float64; unchanged (bool) where `size` is 1. With equal clusters the mean is
    the same, and an interval over clusters is the cluster-robust one."""
    c = np.asarray(correct)
    if size == 1:
        return c
    if c.ndim != 1 or len(c) % size:
        raise ValueError(f"{c.shape} results do not split into clusters of {size}")
    return c.reshape(-1, size).mean(1, dtype=np.float64)


def outcomes(values) -> np.ndarray:
    """A selection's per-image results as the statistics read them: bool where they are per
    image, float64 where they are per-cluster accuracies (`per_cluster`)."""
    v = np.asarray(values)
    return v if v.dtype.kind == "f" else v.astype(bool)


def result_key(row) -> tuple[str, int, int]:
    """What a row's per-image results depend on: its selection, and with recovery fine-tuning
    the steps and the seed of that fine-tuning (0 without recovery: the masks say it all)."""
    rec = int(row.recovery_steps)
    return str(row.mask_hash), rec, int(row.seed) if rec else 0


def correct_of(correct: Correct, row) -> np.ndarray:
    """The per-image correctness behind one sweep row."""
    key = result_key(row)
    if key not in correct:
        raise KeyError(f"no per-image results for selection {key[0]} (recovery {key[1]}, seed {key[2]})")
    return outcomes(correct[key])


def stack(correct: Correct, rows: pd.DataFrame) -> np.ndarray:
    """[seeds, images] correctness of a group of rows, in seed order."""
    return np.stack([correct_of(correct, r) for r in rows.sort_values("seed").itertuples()])


def plateau_keys(rows: pd.DataFrame) -> dict[tuple[float, str, int], tuple[str, int, int]]:
    """(S, allocation, recovery) -> the result key of magnitude's selection there."""
    mag = rows[rows["scorer"] == PLATEAU_SCORER]
    return {(float(r.sparsity), str(r.allocation), int(r.recovery_steps)): result_key(r)
            for r in mag.itertuples()}  # fmt: skip


def is_stochastic(scorer: str, rows: pd.DataFrame) -> bool:
    """Whether a scorer draws random numbers: the registry says, for a registered one; for one
    that is not registered here (a saved study's custom scorer), its rows do: deterministic
    scorers run with seed 0 only (`study.sweep.seeds_for`)."""
    if scorer in SCORERS:
        return get_scorer(scorer).stochastic
    return bool((rows.loc[rows["scorer"] == scorer, "seed"] != 0).any())


def summarize(rows: pd.DataFrame, correct: Correct, level: float = 0.95) -> pd.DataFrame:
    """One row per (scorer, S, allocation, recovery, params): accuracy over seeds and the paired
    escape against the plateau of the same allocation and recovery, on the same images.

    `acc_low/acc_high` are a t-interval of the accuracy over seeds (NaN for one seed);
    `escape_*` come from `paired_escape` (its `se`, its seed and image parts, `df` and two-sided
    `p` included); `robust*` is the 20% trimmed mean over seeds with its interval
    (`stats.trimmed_escape`: a sensitivity check; under 5 seeds a 20% trim cuts nothing, so it
    is the mean's own interval there, as for a deterministic scorer).
    """
    if rows.empty:
        return pd.DataFrame()
    plat = plateau_keys(rows)
    out = []
    for (scorer, S, alloc, rec, params), g in rows.groupby(GROUP, sort=False):
        key = (float(S), str(alloc), int(rec))
        if key not in plat:
            raise KeyError(f"no plateau ({PLATEAU_SCORER}) row at S={S}, allocation={alloc}, "
                           f"recovery={rec}: include it in the sweep")  # fmt: skip
        ref = outcomes(correct[plat[key]])
        c = stack(correct, g)
        stochastic = is_stochastic(scorer, rows)
        esc = paired_escape(c, ref, level=level, stochastic=stochastic)
        # under 5 seeds a 20% trim cuts nothing: the trimmed mean is the mean
        trim = stochastic and len(g) >= 5
        rob = trimmed_escape((c.astype(float) - ref[None, :]) * 100.0, level=level) if trim else esc
        acc = c.mean(axis=1) * 100
        m, lo, hi = mean_ci(acc)
        out.append(dict(
            scorer=scorer, kappa=str(g["kappa"].iloc[0]),
            kappa_hat=int(g["kappa_hat"].mode().max()), sparsity=float(S), allocation=alloc,
            recovery_steps=int(rec), params=params, n_seeds=len(g),
            seeds=",".join(str(s) for s in sorted(g["seed"])), stochastic=stochastic,
            acc=m, acc_low=lo, acc_high=hi, acc_std=float(np.std(acc, ddof=1)) if len(g) > 1 else 0.0,
            plateau=float(ref.mean() * 100), escape=esc.mean, escape_low=esc.low,
            escape_high=esc.high, escape_se=esc.se, escape_df=esc.df, escape_p=esc.p_value,
            escape_se_seed=esc.se_seed, escape_se_image=esc.se_image,
            robust=rob.mean, robust_low=rob.low, robust_high=rob.high,
            robust_se_seed=rob.se_seed, robust_se_image=rob.se_image,
            robust_n=int(len(g) - 2 * np.floor(0.2 * len(g))),
            overlap_magnitude=float(g["overlap_magnitude"].mean()),
            jaccard_magnitude=float(g["jaccard_magnitude"].mean()),
            same_mask_as_magnitude=bool((g["jaccard_magnitude"] == 1.0).all()),
            mask_hash=g["mask_hash"].iloc[0] if g["mask_hash"].nunique() == 1 else "(varies)",
            n_test=int(c.shape[1]),
        ))  # fmt: skip
    return pd.DataFrame(out)


def with_holm(df: pd.DataFrame, p_col: str = "escape_p", alpha: float = ALPHA) -> pd.DataFrame:
    """`df` with `p_holm` (Holm-adjusted over all its rows: one family) and `sig` columns.

    `sig` is "up" (significantly above 0), "down" (below) or "" after adjustment; the direction
    is the point estimate's sign.
    """
    df = df.copy()
    mean_col = "escape" if p_col == "escape_p" else "mean"
    df["p_holm"] = holm(df[p_col].to_numpy(dtype=float)) if len(df) else []
    hit = df["p_holm"] < alpha
    df["sig"] = np.where(hit & (df[mean_col] > 0), "up", np.where(hit & (df[mean_col] < 0), "down", ""))
    return df


def holm_beyond(df: pd.DataFrame, threshold: float, side: int = 1, *, prefix: str = "escape",
                alpha: float = ALPHA) -> np.ndarray:  # fmt: skip
    """Which rows' effects lie beyond `threshold` on `side` (+1 above, −1 below), family-wise
    over all of `df`'s rows: Holm's procedure on p-values that are the interval's two-sided tail
    at `threshold` for an estimate on the far side and 1 on the near side. A row is beyond
    exactly when its two-sided interval at the Holm-adjusted level lies wholly beyond, the same
    reading as the 95% intervals the ledgers show; as a one-sided test, its family-wise error is
    at most α/2. A row without an interval (NaN) is never beyond anything.

    `prefix` names the columns: the estimate (`escape`, or `mean` for a paired table) with
    `<prefix>_se_seed` and `<prefix>_se_image` (`se_seed`/`se_image` for `mean`); the seeds behind
    each row are `n_seeds`.
    """
    if df.empty:
        return np.zeros(0, dtype=bool)
    cols = ("se_seed", "se_image") if prefix == "mean" else (f"{prefix}_se_seed", f"{prefix}_se_image")
    ns = df["n_seeds"].to_numpy()
    est = df[prefix].to_numpy(dtype=float)
    p = np.array([float(p_at(m, a, c, int(n), threshold)) for m, a, c, n in
                  zip(est, df[cols[0]].to_numpy(dtype=float), df[cols[1]].to_numpy(dtype=float), ns)])  # fmt: skip
    far_side = side * (est - threshold) > 0
    p = np.where(np.isnan(p), np.nan, np.where(far_side, p, 1.0))
    return (holm(p) <= alpha) & far_side


def holm_outside(df: pd.DataFrame, margin: float, alpha: float = ALPHA) -> np.ndarray:
    """Which rows' effects lie wholly outside ±`margin`, in either direction, family-wise over
    `df`'s rows (`holm_beyond`'s reading, each row tested against the margin on its own side)."""
    if df.empty:
        return np.zeros(0, dtype=bool)
    est = df["escape"].to_numpy(dtype=float)
    p = np.array([float(p_at(m, a, c, int(n), np.sign(m) * margin)) if abs(m) > margin else 1.0
                  for m, a, c, n in zip(est, df["escape_se_seed"].to_numpy(dtype=float),
                                        df["escape_se_image"].to_numpy(dtype=float), df["n_seeds"])])  # fmt: skip
    return holm(np.where(np.isnan(est), np.nan, p)) <= alpha

def escape_family(summary: pd.DataFrame, kappas=ESCAPE_KAPPAS) -> pd.DataFrame:
    """The tables' and figures' family: every class of these κ at every S of `summary`
    (κ=0 classes are excluded: their escape is 0 by construction), Holm-adjusted together."""
    return with_holm(summary[summary["kappa"].isin(kappas)])


def paired_table(rows: pd.DataFrame, correct: Correct, scorer: str, reference: str,
                 level: float = 0.95) -> pd.DataFrame:  # fmt: skip
    """scorer − reference (points) per S on the same images; `reference` must be deterministic.

    Columns: sparsity, mean, low, high, se, df, p, n_seeds, se_seed, se_image.
    """
    if is_stochastic(reference, rows):
        raise ValueError(f"paired_table needs a deterministic reference, got {reference!r}")
    out = []
    for S, at in rows.groupby("sparsity"):
        a, b = at[at["scorer"] == scorer], at[at["scorer"] == reference]
        if a.empty or b.empty:
            continue
        d = paired_escape(stack(correct, a), correct_of(correct, b.iloc[0]), level=level,
                          stochastic=is_stochastic(scorer, rows))  # fmt: skip
        out.append(dict(sparsity=float(S), mean=d.mean, low=d.low, high=d.high, se=d.se, df=d.df,
                        p=d.p_value, n_seeds=d.n_seeds, se_seed=d.se_seed, se_image=d.se_image))  # fmt: skip
    return pd.DataFrame(out, columns=PAIRED_COLUMNS)


PAIRED_COLUMNS = ["sparsity", "mean", "low", "high", "se", "df", "p", "n_seeds", "se_seed", "se_image"]


def negate(pairs: pd.DataFrame) -> pd.DataFrame:
    """reference − scorer from a `paired_table` (the interval flips)."""
    return pairs.assign(mean=-pairs["mean"], low=-pairs["high"], high=-pairs["low"])


def nearest(values, target: float, tol: float = 0.05) -> float | None:
    """The grid point nearest `target`, if one lies within `tol`."""
    xs = np.array(sorted(set(float(v) for v in values)))
    if len(xs) == 0:
        return None
    best = float(xs[np.argmin(np.abs(xs - target))])
    return best if abs(best - target) <= tol + 1e-9 else None


# --- regimes ---------------------------------------------------------------------------------


def regime_boundaries(summary: pd.DataFrame, alpha: float = ALPHA) -> tuple[float | None, float | None]:
    """Where this run puts the paper's regime boundaries (the paper's: `paper.BOUNDARIES`).

    Family: every κ=1 and κ=2 class at every grid point, Holm-adjusted together (on a fine grid
    that is ~100 tests; the adjustment keeps one noisy cell from placing a boundary).
    - escape(S): some κ=1/κ=2 class escapes significantly (adjusted) at S.
    - takeover(S): some κ=2 class escapes significantly at S and the best κ=2 escape exceeds the
      best κ=1 escape there.
    b1 = the lowest S where escape(S) holds at S and at the next grid point; b2 = the lowest
    S ≥ b1 where takeover(S) holds at S and at the next grid point. A boundary needs its effect to
    persist to the neighbouring grid point, so the last grid point cannot be one; None where
    the rule is never met.
    """
    fam = with_holm(summary[summary["kappa"].isin(NON_MONOTONE_KAPPAS)], alpha=alpha)
    grid = sorted(fam["sparsity"].unique())
    escape, takeover = {}, {}
    for S in grid:
        g = fam[fam["sparsity"] == S]
        k1, k2 = g[g["kappa"] == "1"], g[g["kappa"] == "2"]
        escape[S] = bool((g["sig"] == "up").any())
        takeover[S] = bool((k2["sig"] == "up").any()) and (
            k1.empty or k2["escape"].max() > k1["escape"].max())

    def first(flag: dict, start: float) -> float | None:
        for a, b in zip(grid, grid[1:]):
            if a >= start and flag[a] and flag[b]:
                return float(a)
        return None

    b1 = first(escape, -1.0)
    b2 = first(takeover, b1) if b1 is not None else None
    return b1, b2
