"""Intervals and paired tests: the paper gives point estimates; the companion gives uncertainty.

- `mean_ci`: mean over seeds with a Student-t 95% interval (NaN bounds for one value).
- `paired_escape`: escape of a scorer against the plateau on the *same* test images, from
  per-image correctness, with a bootstrap interval (images and seeds resampled together) and a
  two-sided bootstrap p-value. It sees test-set noise that a seed interval cannot. The image
  resampling is drawn exactly but cheaply, as multinomial counts of per-image patterns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
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


@dataclass(frozen=True)
class Paired:
    """A paired difference in accuracy points (scorer minus reference) with its uncertainty."""

    mean: float
    low: float
    high: float
    p_value: float
    n_seeds: int
    n_images: int

    @property
    def significant(self) -> bool:
        return bool(self.low > 0 or self.high < 0)


def paired_escape(correct: np.ndarray, reference: np.ndarray, *, n_boot: int = 2000,
                  level: float = 0.95, seed: int = 0) -> Paired:  # fmt: skip
    """Difference in accuracy points between `correct` [seeds, images] and `reference` [images].

    Bootstrap: each replicate resamples test images (the same images for every seed) and, when
    there are several, seeds. Identical predictions give exactly 0 with the interval [0, 0].
    """
    c = np.atleast_2d(np.asarray(correct, dtype=np.float32))
    ref = np.asarray(reference, dtype=np.float32)
    if c.shape[1] != ref.shape[0]:
        raise ValueError(f"paired comparison needs the same images: {c.shape[1]} vs {ref.shape[0]}")
    d = (c - ref[None, :]) * 100.0  # per-seed, per-image difference in points
    n_s, n_i = d.shape
    point = float(d.mean())
    rng = np.random.default_rng(seed)
    # Resampling images only changes how often each per-image pattern (one value per seed, at
    # most 3^seeds of them) occurs, so a replicate is one multinomial draw of pattern counts:
    # the same distribution as resampling n_i images, at a cost independent of n_i.
    patterns, counts = np.unique(d.T, axis=0, return_counts=True)  # [P, seeds], [P]
    draws = rng.multinomial(n_i, counts / n_i, size=n_boot)  # [B, P]
    per_seed = draws @ patterns / n_i  # [B, seeds]
    if n_s > 1:
        pick = rng.integers(0, n_s, size=(n_boot, n_s))
        boots = np.take_along_axis(per_seed, pick, axis=1).mean(axis=1)
    else:
        boots = per_seed[:, 0]
    alpha = (1 - level) / 2
    low, high = (float(v) for v in np.quantile(boots, [alpha, 1 - alpha]))
    if np.all(d == 0):
        p = 1.0
    else:
        p = float(min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean())))
    return Paired(point, low, high, p, n_s, n_i)
