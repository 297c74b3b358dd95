"""Power of the paired escape test (pure, no torch): what a study with n seeds can detect, and how
many seeds would detect the paper's effect or show equivalence.

The model is the interval's own (`stats`): a cell's per-seed escapes d_s have variance σ² (seed
effect plus the part of the image noise the seeds see), and the shared images add C to Var(d̄),
so SE(n)² = σ²/n + C. The test at level α (Holm's first step: α/m for a family of m) rejects when
d̄ exceeds the interval's half-width q(n) (the fiducial quantile of `stats`). With an effect δ the
power is P(d̄ > q(n)); read as a Student-t test with the interval's effective df k and critical
value q(n)/SE(n), it is the noncentral t's, and the minimum detectable escape at 80% power is

    MDE(n) = λ* · SE(n),  P(T_k(λ*) > q(n)/SE(n)) = 0.80 (T_k(λ) noncentral t).

Equivalence (every upper bound below the margin M when the true escape is 0) has the same form at
the per-cell level α = 5% (an intersection-union test needs no adjustment): reachable at all only
when (z_{0.975} + z_{0.80})·√C < M, since more seeds never shrink the shared images' part.
`simulated_power` checks the formula by drawing studies from the same model (tests/analysis/test_power.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize
from scipy import stats as sps

from .. import paper
from ..selection.scorers import NON_MONOTONE_KAPPAS
from .stats import _effective_df, _half_width, paired_escape
from .summaries import outcomes, plateau_keys, stack

POWER = 0.8
N_MAX = 400  # seeds beyond which "needed" reads as unreachable on any hardware


@dataclass(frozen=True)
class Components:
    """A cell's variance components, in points²: per-seed variance σ² and the shared-image C."""

    seed_var: float
    image_var: float

    def se(self, n: int) -> float:
        return float(np.sqrt(self.seed_var / n + self.image_var))


def half_width(comp: Components, n: int, alpha: float) -> float:
    """The interval's half-width with n seeds at two-sided level 1 − alpha."""
    return float(_half_width(comp.seed_var / n, comp.image_var, n - 1, 1 - alpha))


def mde(comp: Components, n: int, alpha: float = 0.05, power: float = POWER) -> float:
    """The smallest escape detected with probability `power` at level `alpha`, with n seeds.

    The test is a Student-t test with the interval's effective df k (`stats._effective_df`) and
    critical value q(n)/SE(n); its power at escape δ is that of the noncentral t with k df and
    noncentrality δ/SE(n), solved here for `power` (exact for a t-test, C = 0)."""
    if n < 2 or not np.isfinite(comp.seed_var + comp.image_var):
        return float("nan")
    se = comp.se(n)
    if se == 0:  # no variation at all: any escape shows
        return 0.0
    q = half_width(comp, n, alpha)
    k = _effective_df(se, q, n - 1, 1 - alpha)
    crit = q / se
    if not np.isfinite(k):
        return float(q + sps.norm.ppf(power) * se)
    f = lambda nc: sps.nct.sf(crit, k, nc) - power  # noqa: E731
    return float(optimize.brentq(f, 0.0, crit + 50.0) * se)


def seeds_needed(comp: Components, effect: float, alpha: float = 0.05, power: float = POWER,
                 n_max: int = N_MAX) -> int | None:  # fmt: skip
    """The fewest seeds (≥ 2) whose MDE is at most |effect|; None if none up to n_max."""
    effect = abs(effect)
    if not np.isfinite(effect) or effect <= 0:
        return None
    lo, hi = 2, n_max
    if not np.isfinite(mde(comp, hi, alpha, power)) or mde(comp, hi, alpha, power) > effect:
        return None
    while lo < hi:  # MDE falls with n
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if mde(comp, mid, alpha, power) > effect else (lo, mid)
    return lo


def simulated_power(comp: Components, n: int, effect: float, alpha: float, *, reps: int = 20_000,
                    seed: int = 0) -> float:  # fmt: skip
    """Monte Carlo power of the test: per-seed escapes with variance σ² around effect + a shared
    image error of variance C (known to the test, as the images estimate it), the interval's
    half-width from the sample variance of the d_s."""
    rng = np.random.default_rng(seed)
    d = effect + rng.normal(0.0, np.sqrt(comp.seed_var), (reps, n)) + rng.normal(0.0, np.sqrt(comp.image_var), (reps, 1))
    a = d.var(axis=1, ddof=1) / n
    q = _half_width(a, np.full(reps, comp.image_var), n - 1, 1 - alpha)
    return float(np.mean(d.mean(axis=1) > q))


# the claims' families on the main grid, and the effect each needs detected (points) or the
# equivalence it needs shown: (claim, S test, κ classes, paper's effect or None for equivalence)
def _claim_of(S: float, kappa: str) -> tuple[str, float | None] | None:
    if S < paper.BOUNDARY_SMOOTH:
        return "C2", None
    if abs(S - paper.S_SMOOTH) <= 0.05 and kappa == "1":
        return "C3", paper.SMOOTH_ESCAPE
    if abs(S - paper.S_RAW) <= 0.05:
        return "C4", paper.RAW_ESCAPE
    return None


def power_table(rows: pd.DataFrame, correct, sparsities=(0.5, 0.6, 0.7, 0.8), margin: float = 0.5,
                power: float = POWER) -> pd.DataFrame:  # fmt: skip
    """Per non-monotone class and main S: the variance components, the minimum detectable escape
    now (80% power after Holm over the claim's family, as Bonferroni: α/m, of an escape wholly
    beyond `margin`, as the claims' rules need), the seeds that would detect the paper's effect
    beyond the margin, and for C2 the seeds that would show equivalence within `margin`
    (None: not reachable with any number of seeds, the shared images' part alone exceeds it).
    `seed_share` splits the escape's variance: the seeds' part σ²/n of σ²/n + C."""
    main = rows[(rows["allocation"] == "block") & (rows["recovery_steps"] == 0) & (rows["tag"] == "main")]
    main = main[main["kappa"].astype(str).isin(NON_MONOTONE_KAPPAS)
                & np.isclose(main["sparsity"].to_numpy(float)[:, None], np.asarray(sparsities, float)).any(1)]
    plat = plateau_keys(rows)
    cells = []
    for (scorer, S), g in main.groupby(["scorer", "sparsity"], sort=False):
        found = _claim_of(float(S), str(g["kappa"].iloc[0]))
        if found is None or (float(S), "block", 0) not in plat or len(g) < 2:
            continue
        d = paired_escape(stack(correct, g), outcomes(correct[plat[(float(S), "block", 0)]]),
                          stochastic=True)  # fmt: skip
        cells.append(dict(claim=found[0], scorer=scorer, kappa=str(g["kappa"].iloc[0]), sparsity=float(S),
                          n_seeds=len(g), escape=d.mean, seed_sd=d.se_seed * np.sqrt(len(g)),
                          image_se=d.se_image, paper=found[1]))  # fmt: skip
    df = pd.DataFrame(cells)
    if df.empty:
        return df
    df["family"] = df.groupby("claim")["scorer"].transform("size")
    out = []
    for r in df.itertuples():
        comp = Components(r.seed_sd**2, r.image_se**2)
        alpha = 0.05 / r.family
        equivalence = pd.isna(r.paper)
        # an escape counts beyond the margin only (`claims`): the test is of δ − margin
        out.append(dict(mde_now=mde(comp, r.n_seeds, alpha, power) + margin,
                        seeds_for_paper=None if equivalence else seeds_needed(comp, r.paper - margin, alpha, power),
                        seeds_for_equivalence=seeds_needed(comp, margin, 0.05, power) if equivalence else None))  # fmt: skip
    df = pd.concat([df, pd.DataFrame(out)], axis=1)
    seed_part = df["seed_sd"] ** 2 / df["n_seeds"]
    total = seed_part + df["image_se"] ** 2  # Var(d̄) at the current seeds; 0: no share to speak of
    df["seed_share"] = (seed_part / total.where(total > 0)).astype(float)
    return df


def throughput(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows measured per hour, per sweep tag and precision (the machine shows in the precision: a
    CPU with bf16 units runs `cpu-bf16`, one without `cpu-bf16 (emulated in fp32)`; rows older
    than the precision column read "not recorded"), from each row's own `seconds`: selection,
    surgery and the evaluation on every test image."""
    precision = rows["precision"].fillna("") if "precision" in rows else pd.Series("", index=rows.index)
    rows = rows.assign(precision=precision.replace("", "not recorded"))
    g = rows.groupby(["tag", "precision"], sort=True)["seconds"]
    out = g.agg(rows="size", median_s="median", total_h="sum").reset_index()
    out["total_h"] /= 3600.0
    out["rows_per_hour"] = 3600.0 / out["median_s"]
    return out
