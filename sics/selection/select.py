"""One selection path for every scorer: scores -> keep-masks (per block, or global), and the
masks' fingerprints (hash, overlap, Jaccard). numpy only; applying masks to a model is the unit
kinds' surgery (`sics.units`)."""

from __future__ import annotations

import hashlib
import math

import numpy as np

from ..errors import ParameterError
from .groups import BlockStats, Stacked, equal_groups, stacked
from .scorers import get_scorer, score_blocks, scorer_rng

ALLOCATIONS = ("block", "global")


def check_sparsity(S: float) -> float:
    try:
        S = float(S)
    except (TypeError, ValueError):
        raise ParameterError(f"sparsity must be a number in [0, 1), got {S!r}") from None
    if not 0.0 <= S < 1.0:
        raise ParameterError(f"sparsity {S!r} is outside [0, 1): it is the fraction of channels removed")
    return S


def keep_count(S: float, n: int) -> int:
    """k = round((1 - S) n), halves rounded up (not Python's banker's rounding)."""
    return int(math.floor((1.0 - check_sparsity(S)) * n + 0.5 + 1e-9))


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the k highest scores; ties go to the lower channel index."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.lexsort((np.arange(len(scores)), -scores))
    mask = np.zeros(len(scores), dtype=bool)
    mask[order[:k]] = True
    return mask


def top_k_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """`top_k` of every row of a (groups, H) array at once (the same masks, ties alike)."""
    scores = np.asarray(scores, dtype=np.float64)
    if np.isnan(scores).any():  # (a NaN cut matches nothing: keep top_k's own order for NaN)
        return np.stack([top_k(row, k) for row in scores])
    n = scores.shape[1]
    if k <= 0 or k >= n:
        return np.full(scores.shape, k >= n and k > 0, dtype=bool)
    cut = np.partition(scores, n - k, axis=1)[:, n - k : n - k + 1]  # each row's k-th largest
    mask = scores > cut
    tied = scores == cut  # of the scores equal to the cut, the lowest indices fill the rest
    mask |= tied & (np.cumsum(tied, axis=1) <= k - mask.sum(axis=1, keepdims=True))
    return mask


def select(scores: list[np.ndarray], S: float, allocation: str = "block") -> list[np.ndarray]:
    """Keep-masks from per-block scores.

    block: every block keeps round((1 - S) H) channels (the protocol's default).
    global: round((1 - S) L H) channels over all blocks by one ranking of the raw scores (blocks
    may then keep different counts); ties go to the earlier block, then the lower index.
    """
    if allocation == "block":
        if equal_groups(scores):  # equal groups: one array operation for all
            masks = top_k_rows(stacked(scores), keep_count(S, len(scores[0])))
            return Stacked(list(masks), masks)
        return [top_k(s, keep_count(S, len(s))) for s in scores]
    if allocation == "global":
        flat = np.concatenate(scores)
        mask = top_k(flat, keep_count(S, len(flat)))
        return np.split(mask, np.cumsum([len(s) for s in scores])[:-1])
    raise ParameterError(f"unknown allocation {allocation!r}; valid: {', '.join(ALLOCATIONS)}")


def mask_hash(masks: list[np.ndarray]) -> str:
    """Short content hash of a selection: equal hashes mean identical kept channels."""
    h = hashlib.sha1()
    if equal_groups(masks):  # equal groups: one buffer, the same bytes
        packed = np.packbits(stacked(masks).astype(bool), axis=1)
        size = np.frombuffer(len(masks[0]).to_bytes(4, "little"), dtype=np.uint8)
        h.update(np.hstack([packed, np.broadcast_to(size, (len(masks), 4))]).tobytes())
        return h.hexdigest()[:12]
    for m in masks:
        h.update(np.packbits(np.asarray(m, dtype=bool)).tobytes())
        h.update(len(m).to_bytes(4, "little"))
    return h.hexdigest()[:12]


def _counts(masks: list[np.ndarray], reference: list[np.ndarray]) -> tuple[int, int, int]:
    """(kept, kept by both, kept by either) over every group (one array op for equal groups)."""
    if len(masks) != len(reference):
        raise ValueError(f"{len(masks)} groups against {len(reference)}")
    if equal_groups(masks) and equal_groups(reference) and len(masks[0]) == len(reference[0]):
        a, b = stacked(masks), stacked(reference)
        return int(a.sum()), int((a & b).sum()), int((a | b).sum())
    return (sum(int(m.sum()) for m in masks), sum(int((m & r).sum()) for m, r in zip(masks, reference)),
            sum(int((m | r).sum()) for m, r in zip(masks, reference)))  # fmt: skip


def overlap(masks: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """Fraction of the kept channels that the reference selection keeps too."""
    kept, shared, _ = _counts(masks, reference)
    return shared / kept if kept else 1.0


def jaccard(masks: list[np.ndarray], reference: list[np.ndarray]) -> float:
    _, inter, union = _counts(masks, reference)
    return inter / union if union else 1.0


# --- scoring under an allocation ------------------------------------------------------------
# Global allocation scores all L·H channels as one pooled group (`pooled`): u is the rank of m
# among all channels and the envelope sits on the global cut, so a non-monotone scorer perturbs
# magnitude's global selection, as it perturbs magnitude's per-block one under block allocation.
# Scoring each block apart and ranking the scores across blocks would not: the u-based scores lie
# in [0, 1] in every block, so their global top-k keeps about k channels per block whatever the
# magnitudes, and the escape would measure that allocation rather than the feature.


def pooled(stats: list[BlockStats]) -> BlockStats:
    """Every channel of every block as one group: the scorer's input under global allocation.

    m (and the Taylor importance and every per-channel statistic, when present) is the
    concatenation over blocks, with each channel's block in `extra["block_id"]`; the rank is
    the ascending rank of m over all channels, ties by position in the concatenation (the
    earlier one ranks higher, as `selection.select.select` keeps the earlier one).
    """
    m = np.concatenate([b.m for b in stats])
    has_taylor = all(b.taylor is not None for b in stats)
    taylor = np.concatenate([b.taylor for b in stats]) if has_taylor else None
    shared = set.intersection(*(set(b.extra) for b in stats)) if stats else set()
    extra = {k: np.concatenate([b.extra[k] for b in stats]) for k in sorted(shared)
             if all(np.ndim(b.extra[k]) == 1 for b in stats)}  # fmt: skip
    extra["block_id"] = np.concatenate([np.full(b.H, i) for i, b in enumerate(stats)])  # for per-block criteria
    return BlockStats.from_magnitudes(-1, m, taylor, extra)


def scoring_groups(stats: list[BlockStats], allocation: str) -> list[BlockStats]:
    """The groups a scorer scores: every block apart ("block"), or one pooled group ("global")."""
    if allocation == "block":
        return stats  # (as given: a Stacked list of token groups stays one stack)
    if allocation == "global":
        return [pooled(stats)]
    raise ParameterError(f"unknown allocation {allocation!r}; valid: {', '.join(ALLOCATIONS)}")


def score_and_select(stats: list[BlockStats], scorer: str, S: float, seed: int = 0,
                     params: dict | None = None, allocation: str = "block",
                     ) -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
    """(per-block scores, keep-masks) of one scorer at sparsity S under `allocation`.

    Under "global" the scores are computed once over the pooled group, split back per block,
    and the top round((1 - S) L H) of them kept over all blocks.
    """
    found = get_scorer(scorer)
    if found.matches:
        return _matched(stats, found, S, seed, params, allocation)
    groups = scoring_groups(stats, allocation)
    scores = score_blocks(groups, scorer, S, seed, params)
    if allocation == "global":
        scores = np.split(scores[0], np.cumsum([b.H for b in stats])[:-1])
    return scores, select(scores, S, allocation)


def _matched(stats: list[BlockStats], found, S: float, seed: int, params: dict | None,
             allocation: str) -> tuple[list[np.ndarray], list[np.ndarray]]:  # fmt: skip
    """A control's (scores, masks), drawn against the selection of the scorer it matches (its
    `of` parameter, at the same S and seed) and magnitude's, from a stream seeded by both."""
    if allocation != "block":
        raise ParameterError(f"scorer {found.name!r} matches per-block selections: allocation 'block'")
    p = found.params(params)
    target = score_and_select(stats, p["of"], S, seed)[1]
    reference = score_and_select(stats, "magnitude", S)[1]
    scores = found.fn(stats, S, scorer_rng(f"{found.name}:{p['of']}", seed), target, reference, **p)
    return scores, select(scores, S, allocation)


def kappa_inputs(scores: list[np.ndarray], stats: list[BlockStats],
                 allocation: str) -> tuple[list[np.ndarray], list[BlockStats]]:  # fmt: skip
    """(scores, stats) in the groups the scorer scored: κ̂ reads each group's curve along rank."""
    if allocation == "global":
        return [np.concatenate(scores)], [pooled(stats)]
    return scores, stats
