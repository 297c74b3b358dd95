"""Feature shapes: chaotic maps, smoothing, envelopes. Small pure functions of arrays.

Each works along the last axis, on one group's values or on a batch of equal-size groups at once
(leading axes): a batch gives, row by row, the values that one call per group gives (the same
float operations in the same order), so 10,000 token groups cost one array operation per step.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d


def logistic_sequence(n: int, x0, r: float = 3.99, burn_in: int = 1000) -> np.ndarray:
    """n values of the logistic map x <- r x (1 - x) after `burn_in` steps from x0 (a float, or
    an array of starts: then one sequence per start, along a new last axis)."""
    return _iterate(lambda x: r * x * (1.0 - x), n, x0, burn_in)


def tent_sequence(n: int, x0, mu: float = 1.99, burn_in: int = 1000) -> np.ndarray:
    """n values of the tent map x <- mu min(x, 1 - x); mu < 2 keeps floats from collapsing to 0."""
    return _iterate(lambda x: mu * (min(x, 1.0 - x) if isinstance(x, float) else np.minimum(x, 1.0 - x)),
                    n, x0, burn_in)  # fmt: skip


def _iterate(step, n: int, x0, burn_in: int) -> np.ndarray:
    x = np.asarray(x0, dtype=np.float64)
    if not np.all((x > 0.0) & (x < 1.0)):
        raise ValueError(f"x0 must lie in (0, 1), got {x0}")
    if x.ndim == 0:  # one group: Python floats, the same arithmetic without array overhead
        x = float(x)
    for _ in range(burn_in):
        x = step(x)
    out = np.empty((*np.shape(x), n))
    for i in range(n):
        x = step(x)
        out[..., i] = x
    return out


def smooth(x: np.ndarray, width: float) -> np.ndarray:
    """Gaussian filter of standard deviation `width` samples along the last axis (reflecting edges)."""
    return gaussian_filter1d(np.asarray(x, dtype=np.float64), sigma=width, mode="reflect", axis=-1)


def rescale(x: np.ndarray) -> np.ndarray:
    """Min-max rescale to [-1, 1] along the last axis (a constant maps to 0)."""
    x = np.asarray(x, dtype=np.float64)
    lo, hi = np.min(x, axis=-1, keepdims=True), np.max(x, axis=-1, keepdims=True)
    span = hi - lo
    flat = span <= 0
    out = 2.0 * (x - lo) / np.where(flat, 1.0, span) - 1.0
    return np.where(flat, 0.0, out)


def envelope(u: np.ndarray, center: float, sigma: float) -> np.ndarray:
    """Rank-alignment envelope E(u) = exp(-(u - center)^2 / (2 sigma^2))."""
    return np.exp(-((u - center) ** 2) / (2.0 * sigma**2))


def sinusoid(u: np.ndarray, freq: float, phase: float) -> np.ndarray:
    return np.sin(2.0 * np.pi * freq * u + phase)
