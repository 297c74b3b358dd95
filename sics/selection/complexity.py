"""The measured complexity κ̂ of a score curve read along rank.

κ̂ = 0 if the score is non-decreasing in rank (it keeps magnitude's selection exactly);
otherwise the perturbation (score minus its linear trend) is split by frequency: κ̂ = 2 when
more than `hf_threshold` of its spectral energy lies above `cutoff_cycles` cycles over the
rank range (high-frequency wiggle), κ̂ = 1 when it does not (smooth non-monotone).
The cut-off is in cycles over the whole range because the protocol's smoothing width scales
with H (σ_f = H/50 passes almost nothing above ~24 cycles, whatever H is); for small blocks it
is lowered to H/8 so that white noise still puts 3/4 of its energy above it.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .groups import BlockStats, along_rank, equal_groups, is_monotone_in_rank, stacked

__all__ = [
    "CUTOFF_CYCLES", "HF_THRESHOLD", "along_rank", "high_frequency_share", "is_monotone_in_rank",
    "kappa_hat", "kappa_hat_block",
]  # fmt: skip

CUTOFF_CYCLES = 32
HF_THRESHOLD = 0.5


def high_frequency_share(curve: np.ndarray, cutoff_cycles: float = CUTOFF_CYCLES) -> float:
    """Share of the detrended curve's spectral energy above `cutoff_cycles` cycles."""
    n = len(curve)
    cutoff = min(cutoff_cycles, n / 8)
    t = np.arange(n)
    resid = curve - np.polyval(np.polyfit(t, curve, 1), t)
    power = np.abs(np.fft.rfft(resid)) ** 2
    total = power[1:].sum()
    if total <= 0:
        return 0.0
    return float(power[int(cutoff) + 1 :].sum() / total)


def kappa_hat_block(scores: np.ndarray, block: BlockStats, cutoff_cycles: float = CUTOFF_CYCLES,
                    hf_threshold: float = HF_THRESHOLD) -> tuple[int, float]:  # fmt: skip
    """(κ̂, high-frequency share) of one block's scores."""
    if is_monotone_in_rank(scores, block):
        return 0, 0.0
    share = high_frequency_share(along_rank(scores, block), cutoff_cycles)
    return (2 if share > hf_threshold else 1), share


def _kappa_hat_stack(scores: np.ndarray, batch: BlockStats, cutoff_cycles: float = CUTOFF_CYCLES,
                     hf_threshold: float = HF_THRESHOLD) -> list[tuple[int, float]]:  # fmt: skip
    """`kappa_hat_block` of every group of a stack, as array operations over the groups."""
    curves = along_rank(scores, batch)
    monotone = np.all(np.diff(curves, axis=1) >= 0, axis=1)
    out: list[tuple[int, float]] = [(0, 0.0)] * len(curves)
    # one fit for the finite non-monotone rows (a row with ±inf would turn every column of a
    # joint least-squares fit to NaN); the rest one by one, as `kappa_hat_block` does
    todo = ~monotone & np.isfinite(curves).all(axis=1) & (curves.shape[1] > 1)
    if todo.any():
        rows = curves[todo]
        n = rows.shape[1]
        t = np.arange(n)
        slope, icpt = np.polyfit(t, rows.T, 1)
        power = np.abs(np.fft.rfft(rows - (slope[:, None] * t + icpt[:, None]), axis=1)) ** 2
        total = power[:, 1:].sum(axis=1)
        high = power[:, int(min(cutoff_cycles, n / 8)) + 1 :].sum(axis=1)
        share = np.where(total > 0, high / np.where(total > 0, total, 1.0), 0.0)
        for i, sh in zip(np.flatnonzero(todo), share):
            out[i] = ((2 if sh > hf_threshold else 1), float(sh))
    for i in np.flatnonzero(~monotone & ~todo):
        out[i] = kappa_hat_block(scores[i], BlockStats(-1, batch.m[i], batch.rank[i]), cutoff_cycles, hf_threshold)
    return out


def kappa_hat(scores: list[np.ndarray], stats: list[BlockStats], **kw) -> tuple[int, float]:
    """κ̂ over a model: the most common block value (ties: the larger), and the mean share."""
    if len(scores) != len(stats):
        raise ValueError(f"{len(scores)} score groups for {len(stats)} groups")
    if equal_groups(stats):
        per_block = _kappa_hat_stack(stacked(scores), BlockStats.stack(stats), **kw)
    else:
        per_block = [kappa_hat_block(s, b, **kw) for s, b in zip(scores, stats, strict=True)]
    counts = Counter(k for k, _ in per_block)
    top = max(counts.values())
    k = max(k for k, c in counts.items() if c == top)
    return k, float(np.mean([share for _, share in per_block]))
