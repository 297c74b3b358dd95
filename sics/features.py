"""Feature shapes: chaotic maps, smoothing, envelopes. Small pure functions of arrays."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d


def logistic_sequence(n: int, x0: float, r: float = 3.99, burn_in: int = 1000) -> np.ndarray:
    """n values of the logistic map x <- r x (1 - x) after `burn_in` steps from x0."""
    return _iterate(lambda x: r * x * (1.0 - x), n, x0, burn_in)


def tent_sequence(n: int, x0: float, mu: float = 1.99, burn_in: int = 1000) -> np.ndarray:
    """n values of the tent map x <- mu min(x, 1 - x); mu < 2 keeps floats from collapsing to 0."""
    return _iterate(lambda x: mu * min(x, 1.0 - x), n, x0, burn_in)


def _iterate(step, n: int, x0: float, burn_in: int) -> np.ndarray:
    if not 0.0 < x0 < 1.0:
        raise ValueError(f"x0 must lie in (0, 1), got {x0}")
    x = float(x0)
    for _ in range(burn_in):
        x = step(x)
    out = np.empty(n)
    for i in range(n):
        x = step(x)
        out[i] = x
    return out


def smooth(x: np.ndarray, width: float) -> np.ndarray:
    """Gaussian filter of standard deviation `width` samples (reflecting edges)."""
    return gaussian_filter1d(np.asarray(x, dtype=np.float64), sigma=width, mode="reflect")


def rescale(x: np.ndarray) -> np.ndarray:
    """Min-max rescale to [-1, 1] (a constant maps to 0)."""
    lo, hi = float(np.min(x)), float(np.max(x))
    if hi - lo <= 0:
        return np.zeros_like(x, dtype=np.float64)
    return 2.0 * (x - lo) / (hi - lo) - 1.0


def envelope(u: np.ndarray, center: float, sigma: float) -> np.ndarray:
    """Rank-alignment envelope E(u) = exp(-(u - center)^2 / (2 sigma^2))."""
    return np.exp(-((u - center) ** 2) / (2.0 * sigma**2))


def sinusoid(u: np.ndarray, freq: float, phase: float) -> np.ndarray:
    return np.sin(2.0 * np.pi * freq * u + phase)
