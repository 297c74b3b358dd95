"""Simulated studies with a known population escape, for the coverage and power checks of the
intervals in `stats` (tests/analysis/test_stats.py, tests/study/test_runs.py, tools/interval_coverage.py,
tools/run_coverage.py): one network's seeds as per-image pattern counts (`simulate_paired`), and
K training runs sharing their test images (`simulate_runs`)."""

from __future__ import annotations

import numpy as np
from scipy import stats as sps

from .stats import _from_moments


def simulate_paired(rng: np.random.Generator, n_seeds: int, seed_sd_pts: float,
                    true_escape_pts: float, *, reps: int = 1, N: int = 10_000, q: float = 0.2,
                    rho: float = 0.5):  # fmt: skip
    """Replicates of a paired study with a known population escape, as per-image pattern counts.

    Each replicate has N fresh images. An image is a "swing" image with probability q; a swing
    image has a shared sign σ_i = +1 with probability ½ + μ/(2q), else −1. Seed s draws
    a_s ~ Normal(0, seed_sd) and, on each swing image, keeps σ_i with probability rho or draws
    its own sign, +1 with probability ½ + (μ + a_s/(1 − rho))/(2q) (clipped to [0, 1]).
    D[s, i] is 100 × that sign on swing images and 0 elsewhere, so E[d_s | a_s] = μ + a_s
    (without clipping): seed SD `seed_sd_pts`, image SE ≈ 100·√(q/N) (0.45 pt by default),
    correlated across seeds through σ_i.

    An image matters only through its pattern (D[0, i], …, D[n−1, i]), so a replicate is one
    multinomial draw of pattern counts. Returns (patterns [P, n_seeds] in points,
    counts [reps, P], truth): truth is the exact population escape in points, μ corrected for
    the clipping (negligible unless the seed SD is large against 100·q·(1 − rho)).
    """
    if not 0 <= rho < 1 or not 0 < q <= 1:
        raise ValueError(f"need 0 <= rho < 1 and 0 < q <= 1: rho={rho}, q={q}")
    m, sd = true_escape_pts / 100, seed_sd_pts / 100
    p_shared = 0.5 + m / (2 * q)
    if not 0 <= p_shared <= 1:
        raise ValueError(f"|true escape| must be at most 100·q points: {true_escape_pts}")
    a = rng.normal(0.0, sd, size=(reps, n_seeds)) if sd > 0 else np.zeros((reps, n_seeds))
    p_own = np.clip(0.5 + (m + a / (1 - rho)) / (2 * q), 0.0, 1.0)  # [reps, n]
    plus_if_plus = rho + (1 - rho) * p_own  # P(seed's sign = +1 | σ = +1)
    plus_if_minus = (1 - rho) * p_own
    bits = ((np.arange(2**n_seeds)[:, None] >> np.arange(n_seeds)) & 1).astype(bool)  # [2^n, n]

    def pattern_prob(p_plus):  # [reps, n] -> [reps, 2^n]
        p_plus = p_plus[:, None, :]
        return np.where(bits[None], p_plus, 1 - p_plus).prod(axis=-1)

    swing = p_shared * pattern_prob(plus_if_plus) + (1 - p_shared) * pattern_prob(plus_if_minus)
    swing *= q
    pvals = np.concatenate([swing, np.full((reps, 1), 1 - q)], axis=1)
    pvals /= pvals.sum(axis=1, keepdims=True)
    patterns = np.concatenate([np.where(bits, 100.0, -100.0), np.zeros((1, n_seeds))])
    counts = rng.multinomial(N, pvals)
    # E[clip(α + βZ, 0, 1)] = α − E[(X − 1)⁺] + E[(−X)⁺] for X ~ Normal(α, β²)
    alpha, beta = 0.5 + m / (2 * q), sd / (1 - rho) / (2 * q)
    if beta > 0:  # E[Y⁺] = μΦ(μ/β) + βφ(μ/β) for Y ~ Normal(μ, β²)
        plus_part = lambda mu: mu * sps.norm.cdf(mu / beta) + beta * sps.norm.pdf(mu / beta)
        e_own = alpha - plus_part(alpha - 1) + plus_part(-alpha)
    else:
        e_own = min(max(alpha, 0.0), 1.0)
    truth = 100 * q * (rho * (2 * p_shared - 1) + (1 - rho) * (2 * e_own - 1))
    return patterns, counts, float(truth)


def paired_from_patterns(patterns: np.ndarray, counts: np.ndarray, *, level: float = 0.95,
                         stochastic: bool | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """`paired_escape` for many replicates at once, each given as pattern counts.

    patterns [P, seeds] (points), counts [..., P] (images per pattern). Returns arrays (one value
    per replicate) mean, low, high, se, se_seed, se_image, p_value: the same numbers as
    `paired_escape` on the expanded data (`expand_patterns`), up to rounding.
    """
    pat = np.asarray(patterns, dtype=np.float64)
    w = np.asarray(counts, dtype=np.float64)
    n_i = w.sum(axis=-1)
    if np.any(n_i != n_i.reshape(-1)[0]):
        raise ValueError("every replicate needs the same number of images")
    n_i = float(n_i.reshape(-1)[0])
    d_s = w @ pat / n_i  # [..., n]
    var_seed = (w @ pat**2 - n_i * d_s**2) / (n_i - 1)
    row = pat.mean(axis=1)
    bar = w @ row / n_i
    var_bar = (w @ row**2 - n_i * bar**2) / (n_i - 1)
    return _from_moments(d_s, np.maximum(var_bar, 0), np.maximum(var_seed, 0), int(n_i),
                         level=level, stochastic=stochastic)  # fmt: skip


def expand_patterns(patterns: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """D [seeds, images] for one replicate's pattern counts [P] (images in pattern order)."""
    return np.repeat(np.asarray(patterns), np.asarray(counts), axis=0).T


SEED_SHAPES = ("normal", "t3", "outliers")


def simulate_runs(rng: np.random.Generator, K: int, n: int, *, run_sd: float, seed_sd: float = 2.0,
                  shape: str = "normal", truth: float = 1.0, N: int = 400, image_se: float = 0.45,
                  shared: float = 0.6, reps: int = 1) -> np.ndarray:  # fmt: skip
    """D [reps, K, n, N] (points) of a K-run study with n seeds per run, all on the same N images.

    D[r, s, i] = truth + b_r + a_rs + u_i + w_ri + e_rsi: b_r ~ Normal(0, run_sd), the network;
    a_rs the seed effect with SD `seed_sd`, normal, t₃ (scaled to that SD), or "outliers" (normal,
    but 10% of seeds +10 points off, re-centred so the mean effect stays `truth`); u_i an image
    effect shared by every run, w_ri one of each run, e_rsi one of each selection. The image terms
    are scaled so one selection's image error has SD `image_se`, of which the fraction `shared`
    of the variance is common to all runs: the part that no spread of runs or seeds can see.
    """
    if shape not in SEED_SHAPES:
        raise ValueError(f"unknown seed shape {shape!r}; valid: {', '.join(SEED_SHAPES)}")
    per_image = image_se * np.sqrt(N)
    su, sw = per_image * np.sqrt(shared), per_image * np.sqrt((1 - shared) / 2)
    se_ = per_image * np.sqrt((1 - shared) / 2)
    b = rng.normal(0, run_sd, (reps, K, 1, 1))
    if shape == "normal":
        a = rng.normal(0, seed_sd, (reps, K, n, 1))
    elif shape == "t3":
        a = rng.standard_t(3, (reps, K, n, 1)) * seed_sd / np.sqrt(3.0)
    else:
        a = rng.normal(0, seed_sd, (reps, K, n, 1)) + 10.0 * (rng.random((reps, K, n, 1)) < 0.1) - 1.0
    u = rng.normal(0, su, (reps, 1, 1, N))
    w = rng.normal(0, sw, (reps, K, 1, N))
    e = rng.normal(0, se_, (reps, K, n, N))
    return truth + b + a + u + w + e


def run_level_many(d: np.ndarray, *, level: float = 0.95, pooled: bool = False) -> dict[str, np.ndarray]:
    """`run_level_escape` for many simulated studies at once: d [reps, K, n, N] (`simulate_runs`).

    With `pooled`, the wrong analysis instead: every seed of every run as if all came from one
    network (`paired_escape` over K·n seeds), the negative control of the coverage checks.
    """
    d = np.asarray(d, dtype=np.float64)
    reps, K, n, N = d.shape
    if pooled:
        flat = d.reshape(reps, K * n, N)
        return _from_moments(flat.mean(axis=-1), flat.mean(axis=1).var(axis=-1, ddof=1),
                             flat.var(axis=-1, ddof=1), N, level=level, stochastic=True)  # fmt: skip
    runs = d.mean(axis=2)  # [reps, K, N]: stage one
    return _from_moments(runs.mean(axis=-1), runs.mean(axis=1).var(axis=-1, ddof=1),
                         runs.var(axis=-1, ddof=1), N, level=level, stochastic=True)  # fmt: skip
