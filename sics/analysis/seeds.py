"""Seeds as a distribution (pure, no torch): each seed's own escape, whether that seed's selection
escapes on its own, and which seeds are outliers.

The interval of `stats` estimates the mean escape over seeds. A few seeds gaining a lot while most
gain nothing gives the same mean as every seed gaining a little, so beside it:

- **the share of seeds that escape**: seed s escapes when its own selection beats the plateau on
  the same images by the exact paired (McNemar) test, b images it gets right and the plateau
  wrong against c the other way, two-sided binomial p of b out of b + c, with Holm over the
  class's seeds at that S (a family per class and S). Where the results are per-cluster
  accuracies (a context's predicted bytes: `summaries.per_cluster`) McNemar's pairs are not
  independent, so the test is the paired t-test over clusters, and b and c count the clusters
  the seed does better and worse on;
- **the median seed escape** with a distribution-free interval (`stats.median_interval`): the
  mean's interval under-covers when a few seeds gain a lot, the median's does not;
- **outlier seeds**: a robust z-score |d_s − median| / (1.4826 · MAD) above 3 (MAD the median
  absolute deviation of the class's per-seed escapes at that S; none when the MAD is 0).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from ..selection.scorers import NON_MONOTONE_KAPPAS
from .stats import holm, median_interval, paired_escape
from .summaries import ALPHA, correct_of, outcomes, plateau_keys, stack

OUTLIER_Z = 3.0


def per_seed(rows: pd.DataFrame, correct, kappas=NON_MONOTONE_KAPPAS, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per (class, S, seed) of the main rows: escape (points), b, c, p, p_holm, escapes,
    robust z, outlier."""
    main = rows[(rows["allocation"] == "block") & (rows["recovery_steps"] == 0) & (rows["tag"] == "main")]
    main = main[main["kappa"].astype(str).isin(kappas)]
    plat = plateau_keys(rows)
    out = []
    for (scorer, S), g in main.groupby(["scorer", "sparsity"], sort=False):
        if (float(S), "block", 0) not in plat:
            continue
        ref = outcomes(correct[plat[(float(S), "block", 0)]])
        cells = []
        for r in g.sort_values("seed").itertuples():
            c_s = correct_of(correct, r)
            cells.append(dict(scorer=scorer, kappa=str(r.kappa), sparsity=float(S), seed=int(r.seed),
                              **seed_test(c_s, ref)))  # fmt: skip
        d = pd.DataFrame(cells)
        d["image_se"] = paired_escape(stack(correct, g), ref, stochastic=True).se_image  # the cell's
        d["p_holm"] = holm(d["p"].to_numpy())
        d["escapes"] = (d["p_holm"] < alpha) & (d["escape"] > 0)
        med = d["escape"].median()
        mad = 1.4826 * (d["escape"] - med).abs().median()
        d["robust_z"] = (d["escape"] - med) / mad if mad > 0 else 0.0
        d["outlier"] = d["robust_z"].abs() > OUTLIER_Z
        out.append(d)
    cols = ["scorer", "kappa", "sparsity", "seed", "escape", "b", "c", "p", "p_holm", "escapes", "robust_z", "outlier",
            "image_se"]  # fmt: skip
    return pd.concat(out, ignore_index=True)[cols] if out else pd.DataFrame(columns=cols)


def seed_test(c_s: np.ndarray, ref: np.ndarray) -> dict:
    """One seed against the plateau on the same items: escape (points), b, c and the two-sided p
    (McNemar on per-image bools; the paired t-test on per-cluster accuracies)."""
    if c_s.dtype == bool:
        b, c = int((c_s & ~ref).sum()), int((~c_s & ref).sum())
        p = float(sps.binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
        return dict(escape=(b - c) / len(ref) * 100.0, b=b, c=c, p=p)
    d = c_s - ref
    b, c = int((d > 0).sum()), int((d < 0).sum())
    p = float(sps.ttest_1samp(d, 0.0).pvalue) if np.any(d != d[0]) else (1.0 if d[0] == 0 else 0.0)
    return dict(escape=float(d.mean() * 100.0), b=b, c=c, p=p)


def seed_shares(seeds: pd.DataFrame) -> pd.DataFrame:
    """Per class and S: seeds, the mean and the median per-seed escape with the median's
    distribution-free interval (`stats.median_interval`, widened by the cell's shared-image SE),
    the share of seeds that escape on their own, and the outlier seeds."""
    cols = ["scorer", "kappa", "sparsity", "n_seeds", "mean", "median", "median_low", "median_high",
            "escaping", "share", "outliers"]  # fmt: skip
    if seeds.empty:
        return pd.DataFrame(columns=cols)
    out = []
    for (scorer, kappa, S), d in seeds.groupby(["scorer", "kappa", "sparsity"], sort=False):
        med, lo, hi = median_interval(d["escape"], float(d["image_se"].iloc[0]))
        out.append(dict(scorer=scorer, kappa=kappa, sparsity=S, n_seeds=len(d), mean=d["escape"].mean(),
                        median=med, median_low=lo, median_high=hi, escaping=int(d["escapes"].sum()),
                        share=d["escapes"].mean(), outliers=" ".join(str(s) for s in d.loc[d["outlier"], "seed"])))  # fmt: skip
    return pd.DataFrame(out, columns=cols)
