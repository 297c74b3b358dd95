"""Intervals and paired tests: the paper gives point estimates; the companion gives uncertainty.

- `mean_ci`: mean over seeds with a Student-t 95% interval (NaN bounds for one value).
- `paired_escape`: escape of a scorer against the plateau on the *same* test images, from
  per-image correctness, with an analytic interval and a two-sided p-value.
- `holm`: Holm–Bonferroni adjusted p-values for a family of such comparisons.

Why not a bootstrap. The escape has two sources of noise: the scorer's random seed (seed SD
2–5 points) and the finite test set (about 0.5 point). With 3–5 seeds a bootstrap cannot see the
seed variance (with 3 seeds its 2.5% quantile is about the lowest seed): 70–89% simulated
coverage for a nominal 95% at seed SD 2–5 points (tools/interval_coverage.py).

The model. D[s, i] = (correct[s, i] − reference[i])·100, d_s = mean_i D[s, i] (the escape of
seed s), estimate d̄ = mean_s d_s, d_s = μ + a_s + e_s with a_s the seed effect (variance σ²)
and e_s the image-sampling error (variance v). The images are shared, so e_s and e_t are
correlated (covariance c) and do not average away over seeds:

    Var(d̄) = σ²/n + v/n + (n−1)c/n = E[s_d²]/n + c,

as the sample variance s_d² of the d_s estimates σ² + v − c. The seeds cannot see c; the images
can: V̂_bar = var_i(mean_s D[s, i])/N estimates (v + (n−1)c)/n and v̂ = mean_s var_i(D[s, i])/N
estimates v, so ĉ = (n·V̂_bar − v̂)/(n − 1), clipped at 0, and SE² = A + C with A = s_d²/n
(the seed part, n − 1 degrees of freedom) and C = ĉ (from thousands of images: treated as known).

The quantile. The plug-in Welch–Satterthwaite df = (n − 1)(SE²/A)² under-covers with 3 seeds
(92–93% simulated at seed SD 1–2 points): df is largest when s_d² is small by chance, so the
interval is shortest exactly when it is most wrong. Instead we use the distribution of the
generalized (fiducial) pivot for one estimated and one known variance component:
d̄ − μ ~ Z·√(A·(n−1)/U + C), Z ~ Normal(0, 1), U ~ χ²_{n−1}, with A and C fixed at their
estimates (a 1-D integral, done by Gauss–Legendre quadrature). It is the Student-t interval with
n − 1 df when C = 0, the normal one when A = 0, and mildly conservative in between (94.5–98%
simulated coverage at 3–5 seeds, seed SD 0–5 points). The p-value is its two-sided tail at d̄, so
p < 1 − level exactly when the interval excludes 0. `Paired.df` reports the effective df, the
Student-t df with the same half-width at `level`.

One seed: a deterministic scorer (`stochastic=False`, the default for one row) has no seed
effect, and SE² = var_i(D)/N with a normal quantile is the exact paired comparison of two
models on the same images. One seed of a random scorer (`stochastic=True`) says nothing about
its seed variance, so there is no honest interval: NaN bounds, NaN p-value, not significant.

The reference (the plateau) is treated as fixed: it is deterministic in this study.
`sics.analysis.simulate` draws data with a known population escape for the coverage checks
(tests/analysis/test_stats.py, tests/study/test_runs.py and the tools).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, special
from scipy import stats as sps


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) with a t interval over the values (seeds)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[~np.isnan(x)]
    if len(x) == 0:
        return np.nan, np.nan, np.nan
    m = float(x.mean())
    if len(x) < 2:
        return m, np.nan, np.nan
    half = float(sps.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, m - half, m + half


# --- the paired interval -----------------------------------------------------------------------

_GL_X, _GL_W = np.polynomial.legendre.leggauss(64)


def _tail(w, a, c, k: int):
    """P(|Z|·√(a·k/U + c) > w), Z ~ Normal(0, 1), U ~ χ²_k; arrays broadcast, w > 0.

    Conditioning on Z: the event is |Z| > w/√c, or U < a·k·Z²/(w² − c·Z²). The second part is a
    smooth integral over 0 ≤ z < min(w/√c, 10), by 64-point Gauss–Legendre (error < 1e-12).
    """
    w, a, c = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (w, a, c)))
    with np.errstate(divide="ignore", invalid="ignore"):
        b_true = np.where(c > 0, w / np.sqrt(c), np.inf)
        b = np.minimum(b_true, 10.0)
        z = b[..., None] * (_GL_X + 1) / 2
        u = a[..., None] * k * z**2 / (w[..., None] ** 2 - c[..., None] * z**2)
        # u = 0 where a = 0, so k is then unused
        f = np.exp(-(z**2) / 2) * np.sqrt(2 / np.pi) * special.chdtr(max(k, 1), u)
        return 2 * special.ndtr(-b_true) + b / 2 * (f @ _GL_W)


def _half_width(a, c, k: int, level: float) -> np.ndarray:
    """q with P(|Z|·√(a·k/U + c) ≤ q) = level: the interval is d̄ ± q (see the docstring)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1): {level}")
    a, c = np.broadcast_arrays(np.asarray(a, dtype=np.float64), np.asarray(c, dtype=np.float64))
    alpha = 1 - level
    z, t = sps.norm.ppf(1 - alpha / 2), sps.t.ppf(1 - alpha / 2, max(k, 1))
    q = np.where(a > 0, t * np.sqrt(a), z * np.sqrt(c))  # exact when c == 0 or a == 0
    q = np.where(np.isnan(a) | np.isnan(c), np.nan, q)
    mixed = (a > 0) & (c > 0)
    if mixed.any():  # Illinois regula falsi on the log tail, from the bracket [z√c, ~t√(a + c)]
        am, cm = a[mixed], c[mixed]
        lo, hi = z * np.sqrt(cm), t * np.sqrt(am + cm)
        f_lo = np.log(_tail(lo, am, cm, k) / alpha)  # ≥ 0: the tail at z√c is at least alpha
        f_hi = np.log(_tail(hi, am, cm, k) / alpha)
        for _ in range(50):  # t√(a + c) is above the root except at low levels: widen
            out = f_hi > 0
            if not out.any():
                break
            hi[out] *= 1.5
            f_hi[out] = np.log(_tail(hi[out], am[out], cm[out], k) / alpha)
        best = np.where(np.abs(f_lo) < np.abs(f_hi), lo, hi)
        side = np.zeros(len(am))
        todo = np.abs(np.minimum(np.abs(f_lo), np.abs(f_hi))) > 1e-12
        for _ in range(100):
            if not todo.any():
                break
            i = np.flatnonzero(todo)
            w = (lo[i] * f_hi[i] - hi[i] * f_lo[i]) / (f_hi[i] - f_lo[i])
            f = np.log(_tail(w, am[i], cm[i], k) / alpha)
            best[i] = w
            left = f > 0  # tail above alpha: the root lies between w and hi
            f_hi[i] = np.where(left & (side[i] == 1), f_hi[i] / 2, f_hi[i])
            f_lo[i] = np.where(~left & (side[i] == -1), f_lo[i] / 2, f_lo[i])
            lo[i], f_lo[i] = np.where(left, w, lo[i]), np.where(left, f, f_lo[i])
            hi[i], f_hi[i] = np.where(left, hi[i], w), np.where(left, f_hi[i], f)
            side[i] = np.where(left, 1, -1)
            todo[i] = (np.abs(f) > 1e-12) & (hi[i] - lo[i] > 1e-14 * hi[i])
        q[mixed] = best
    return q


def _from_moments(d_s, var_bar, var_seed, n_images: int, *, level: float,
                  stochastic: bool | None) -> dict[str, np.ndarray]:  # fmt: skip
    """The interval from sufficient statistics, vectorised over any leading (replicate) axes.

    d_s [..., n]: per-seed escapes; var_bar [...]: var_i(mean_s D[s, i]); var_seed [..., n]:
    var_i(D[s, i]) (both ddof=1, in points²); n_images: N. See the module docstring.
    """
    d_s = np.asarray(d_s, dtype=np.float64)
    n = d_s.shape[-1]
    stochastic = n > 1 if stochastic is None else bool(stochastic)
    mean = d_s.mean(axis=-1)
    if n == 1:
        a = np.full(mean.shape, np.nan if stochastic else 0.0)
        c = np.asarray(var_seed, dtype=np.float64)[..., 0] / n_images
        c = np.where(np.isnan(a), np.nan, c)
    else:
        a = d_s.var(axis=-1, ddof=1) / n
        v_bar = np.asarray(var_bar, dtype=np.float64) / n_images
        v = np.asarray(var_seed, dtype=np.float64).mean(axis=-1) / n_images
        c = np.maximum((n * v_bar - v) / (n - 1), 0.0)
    q = _half_width(a, c, n - 1, level)
    se = np.sqrt(a + c)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(se > 0, _tail(np.where(se > 0, np.abs(mean), 1.0), a, c, n - 1),
                     np.where(mean == 0, 1.0, 0.0))  # fmt: skip
    p = np.where(np.isnan(se), np.nan, np.clip(p, 0.0, 1.0))
    return dict(mean=mean, low=mean - q, high=mean + q, se=se, se_seed=np.sqrt(a),
                se_image=np.sqrt(c), p_value=p)  # fmt: skip


def _effective_df(se: float, q: float, k: int, level: float) -> float:
    """The Student-t df whose quantile gives the half-width q: t_df·se = q (inf for normal)."""
    if not (np.isfinite(se) and np.isfinite(q)) or se == 0:
        return np.nan if np.isnan(se) or np.isnan(q) else np.inf
    p = 0.5 + level / 2
    f = lambda df: sps.t.ppf(p, df) * se - q
    if f(1e9) >= -1e-12 * q:
        return np.inf
    k = max(k, 1)
    if f(k) <= 1e-12 * q:
        return float(k)
    return float(optimize.brentq(f, k, 1e9, xtol=1e-6, rtol=1e-10))


@dataclass(frozen=True)
class Paired:
    """A paired difference in accuracy points (scorer minus reference) with its uncertainty.

    `low`/`high` is the two-sided interval at `level`, `p_value` its test of 0. `se` is the
    standard error, √(se_seed² + se_image²): the seed part (s_d²/n) and the shared-image part
    (ĉ; or var_i(D)/N for one deterministic seed). `df` is the effective Student-t df of the
    interval at `level` (inf: normal). NaN fields: no interval can be given (one seed of a
    random scorer). `interval(level)` gives the interval at another level, e.g. Bonferroni.
    """

    mean: float
    low: float
    high: float
    se: float
    df: float
    p_value: float
    n_seeds: int
    n_images: int
    se_seed: float = 0.0
    se_image: float = 0.0
    level: float = 0.95

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (False when there is no interval)."""
        return bool(self.low > 0 or self.high < 0)

    def interval(self, level: float) -> tuple[float, float]:
        """(low, high): the two-sided interval at another level."""
        q = float(_half_width(self.se_seed**2, self.se_image**2, self.n_seeds - 1, level))
        return self.mean - q, self.mean + q

    def upper(self, level: float = 0.95) -> float:
        """One-sided upper confidence bound at `level` (the two-sided bound at 2·level − 1)."""
        return self.interval(2 * level - 1)[1]


def _paired_from_diff(d: np.ndarray, *, level: float = 0.95,
                      stochastic: bool | None = None) -> Paired:  # fmt: skip
    """`paired_escape` from the differences D [seeds, images] in points."""
    d = np.atleast_2d(np.asarray(d, dtype=np.float64))
    n_s, n_i = d.shape
    if n_i < 2:
        raise ValueError(f"paired comparison needs at least 2 images: {n_i}")
    r = {k: float(v) for k, v in _from_moments(
        d.mean(axis=1), d.mean(axis=0).var(ddof=1), d.var(axis=1, ddof=1), n_i, level=level,
        stochastic=stochastic).items()}  # fmt: skip
    df = _effective_df(r["se"], r["high"] - r["mean"], n_s - 1, level)
    return Paired(r["mean"], r["low"], r["high"], r["se"], df, r["p_value"], n_s, n_i,
                  r["se_seed"], r["se_image"], level)  # fmt: skip


def paired_escape(correct: np.ndarray, reference: np.ndarray, *, level: float = 0.95,
                  stochastic: bool | None = None) -> Paired:  # fmt: skip
    """Difference in accuracy points between `correct` [seeds, images] and `reference` [images].

    Analytic interval combining between-seed and between-image variance (module docstring).
    `stochastic`: whether the scorer depends on its seed; None means "more than one seed".
    With one seed of a stochastic scorer the interval is NaN. Identical predictions give exactly
    0 with the interval [0, 0] and p = 1.
    """
    c = np.atleast_2d(np.asarray(correct, dtype=np.float64))
    ref = np.asarray(reference, dtype=np.float64)
    if c.ndim != 2 or ref.ndim != 1 or c.shape[1] != ref.shape[0]:
        raise ValueError(f"paired comparison needs the same images: {c.shape} vs {ref.shape}")
    return _paired_from_diff((c - ref[None, :]) * 100.0, level=level, stochastic=stochastic)


def holm(p_values) -> np.ndarray:
    """Holm–Bonferroni step-down adjusted p-values, in the input's order and shape.

    Sorted ascending, p_(k) becomes max_{j ≤ k} min(1, (m − j + 1)·p_(j)); NaN stays NaN and is
    not counted in m. Reject at family-wise level α where the adjusted p-value is ≤ α.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    flat, res = p.ravel(), out.reshape(-1)
    idx = np.flatnonzero(~np.isnan(flat))
    order = idx[np.argsort(flat[idx], kind="stable")]
    m = len(order)
    adj = np.minimum(1.0, (m - np.arange(m)) * flat[order])
    res[order] = np.maximum.accumulate(adj) if m else adj
    return res.reshape(p.shape)


def median_interval(d_s, image_se: float = 0.0, level: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): a distribution-free interval for the median seed escape.

    The mean's interval assumes the seeds spread about normally; when a few seeds gain a lot while
    most gain nothing it under-covers (76–88% for a nominal 95% at 3–20 seeds, with 10% of seeds
    +10 points off: tests/analysis/test_stats.py), and no interval for the *mean* can be trusted there with
    few seeds. The median's order-statistic interval [d_(k), d_(n+1−k)], k the largest with
    P(Binomial(n, ½) < k) ≤ (1 − level)/2, covers at least `level` whatever the seeds' spread; it
    is widened by z·√C on each side for the shared images' error (which moves every d_s alike).
    With fewer than 6 seeds even (min, max) covers only 1 − 2^(1−n) (93.75% at 5): then it is
    (min, max), and its coverage is less than `level`."""
    d = np.sort(np.asarray(d_s, dtype=np.float64))
    n = len(d)
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    tail = (1 - level) / 2
    k = max(1, int(sps.binom.ppf(tail, n, 0.5)))  # P(B < k) ≤ tail
    while k > 1 and sps.binom.cdf(k - 1, n, 0.5) > tail:
        k -= 1
    pad = float(sps.norm.ppf(1 - tail)) * image_se
    return float(np.median(d)), float(d[k - 1] - pad), float(d[n - k] + pad)


# --- tests against a margin, trimmed means, and training runs ----------------------------------


def p_at(mean, se_seed, se_image, n: int, threshold: float = 0.0) -> np.ndarray:
    """Two-sided p-value of "the effect equals `threshold`" under the interval's pivot.

    `mean`, `se_seed`, `se_image`: as `Paired` (or a summary's escape columns), `n` the seeds (or
    runs) behind them. At threshold 0 it is `Paired.p_value`; at a margin it tests whether the
    interval at any level lies wholly beyond that margin, which is what Holm's procedure needs to
    decide "beyond the margin" over a family. NaN where there is no interval.
    """
    mean, a, c = (np.asarray(v, dtype=np.float64) for v in (mean, se_seed, se_image))
    a, c = a**2, c**2
    w = np.abs(mean - threshold)
    se = np.sqrt(a + c)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(se > 0, _tail(np.where(w > 0, w, 1e-300), a, c, max(int(n) - 1, 1)),
                     np.where(w == 0, 1.0, 0.0))  # fmt: skip
    return np.where(np.isnan(se) | np.isnan(mean), np.nan, np.clip(p, 0.0, 1.0))


def trimmed_escape(d: np.ndarray, *, trim: float = 0.2, level: float = 0.95) -> Paired:
    """The `trim`-trimmed mean over seeds of D [seeds, images] (points), with Yuen's winsorised
    standard error for the seeds and the shared-image term of `paired_escape` added.

    A robustness check, not the verdict: it estimates the trimmed mean, another quantity than the
    mean when the seeds' spread is skewed. g = ⌊trim·n⌋ seeds are cut from each end (h = n − 2g
    kept); Yuen's SE² = (n − 1)·s_w²/(h·(h − 1)) with s_w² the variance of the winsorised seed
    escapes, on h − 1 degrees of freedom; the image part is `paired_escape`'s ĉ. The interval is
    the same pivot as `paired_escape`'s with these two parts. Fewer than 3 seeds: NaN.
    """
    d = np.atleast_2d(np.asarray(d, dtype=np.float64))
    n, n_i = d.shape
    if n < 3:
        nan = float("nan")
        return Paired(nan, nan, nan, nan, nan, nan, n, n_i, nan, nan, level)
    d_s = d.mean(axis=1)
    g = int(np.floor(trim * n))
    h = n - 2 * g
    order = np.sort(d_s)
    tmean = float(order[g:n - g].mean())
    wins = np.clip(d_s, order[g], order[n - g - 1])
    a = (n - 1) * wins.var(ddof=1) / (h * (h - 1))
    v_bar = d.mean(axis=0).var(ddof=1) / n_i
    v = d.var(axis=1, ddof=1).mean() / n_i
    c = max((n * v_bar - v) / (n - 1), 0.0)
    q = float(_half_width(a, c, h - 1, level))
    se = float(np.sqrt(a + c))
    p = float(p_at(tmean, np.sqrt(a), np.sqrt(c), h))
    # n_seeds is h, the seeds kept: `Paired.interval` then reads Yuen's h − 1 degrees of freedom
    return Paired(tmean, tmean - q, tmean + q, se, _effective_df(se, q, h - 1, level), p, h, n_i,
                  float(np.sqrt(a)), float(np.sqrt(c)), level)  # fmt: skip


def run_level_escape(per_run: list[np.ndarray], *, level: float = 0.95) -> Paired:
    """The escape of a recipe from K training runs, each run weighted equally.

    `per_run[r]` is run r's D [seeds, images] (points) against its own plateau, on the test images
    that every run shares. Stage one: each run's mean over its seeds, image by image,
    D_r[i] = mean_s D[r, s, i]. Stage two: `paired_escape`'s interval with the runs in the place of
    the seeds: the spread of the run means (which holds the between-run, the within-run seed and
    each run's own image variance) on K − 1 degrees of freedom, plus the covariance of the runs'
    image errors, which the runs cannot see since they share the images. `n_seeds` of the result
    is K. One run gives no interval (NaN): one network says nothing about the spread of networks.
    """
    if not per_run:
        raise ValueError("run_level_escape needs at least one run")
    rows = [np.atleast_2d(np.asarray(d, dtype=np.float64)).mean(axis=0) for d in per_run]
    if len({len(r) for r in rows}) != 1:
        raise ValueError(f"the runs must share the test images: {sorted({len(r) for r in rows})} images")
    return _paired_from_diff(np.stack(rows), level=level, stochastic=True)
