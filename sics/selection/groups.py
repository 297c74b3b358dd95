"""Groups of units and the statistics every scorer may read (m, rank, u, calibration importance).

The bottom of the selection layer (numpy only): `scorers` and `complexity` import this module,
and it imports neither. The unit kinds (`sics.units`) compute the statistics from a model.

Rank ties follow `select.top_k`: among channels of equal magnitude the lower channel index gets
the higher rank, so keeping the top ranks keeps exactly the channels that keeping the top
magnitudes keeps (`top_k(u)` and `top_k(m)` agree even with tied magnitudes).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from ..errors import ParameterError


def magnitude_rank(m: np.ndarray) -> np.ndarray:
    """Ascending rank 0 .. H-1 of `m` along the last axis; equal values: the lower index gets
    the higher rank."""
    m = np.asarray(m, dtype=np.float64)
    index = np.broadcast_to(np.arange(m.shape[-1]), m.shape)
    order = np.lexsort((-index, m), axis=-1)  # by m ascending, then by index descending
    rank = np.empty(m.shape, dtype=np.int64)
    np.put_along_axis(rank, order, index, axis=-1)
    return rank


class Stacked(list):
    """A list of equal-size per-group items that also holds them as one whole (`whole`): a
    (groups, H) array, or a stacked BlockStats. Made once, it spares every later step of a row
    re-stacking 10,000 token groups."""

    def __init__(self, items, whole):
        super().__init__(items)
        self.whole = whole

    def _frozen(self, *args, **kwargs):
        raise TypeError("a Stacked list is read-only (its whole would go stale); copy it with list()")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = _frozen
    append = extend = insert = pop = remove = clear = sort = reverse = _frozen


def equal_groups(rows) -> bool:
    """Whether `rows` are two or more groups of one size (so they can be worked on as a stack)."""
    if isinstance(rows, Stacked):
        return len(rows) > 1
    return len(rows) > 1 and len({len(r.m) if isinstance(r, BlockStats) else len(r) for r in rows}) == 1


def stacked(rows) -> np.ndarray:
    """Per-group arrays of equal size as one (groups, H) array."""
    return rows.whole if isinstance(rows, Stacked) else np.stack(rows)


@dataclass(frozen=True)
class BlockStats:
    """What a scorer may look at for one group of H units (a block's MLP or conv channels, an image's tokens).

    `stack` makes one of many equal-size groups: its arrays then have a leading group axis,
    and a scorer registered `batched=True` scores them all in one call.
    """

    index: int
    m: np.ndarray  # L2 norm of [fc1 row c, fc2 column c], float64
    rank: np.ndarray  # ascending rank of m, 0 .. H-1 (ties: lower index ranks higher)
    taylor: np.ndarray | None = None  # first-order Taylor importance (calibration), if computed
    # further statistics by name (`EXTRA`), where the unit provides them: weight statistics with
    # the stats, calibration statistics per seed (`with_extra`)
    extra: dict = field(default_factory=dict, compare=False)

    @classmethod
    def stack(cls, groups: list[BlockStats]) -> BlockStats:
        """Equal-size groups as one batch (index -1): m, rank, taylor of shape (groups, H)."""
        if isinstance(groups, Stacked):
            return groups.whole
        has_taylor = all(g.taylor is not None for g in groups)
        shared = set.intersection(*(set(g.extra) for g in groups)) if groups else set()
        extra = {k: np.stack([g.extra[k] for g in groups]) for k in sorted(shared)}
        return cls(-1, np.stack([g.m for g in groups]), np.stack([g.rank for g in groups]),
                   np.stack([g.taylor for g in groups]) if has_taylor else None, extra)  # fmt: skip

    @property
    def batch(self) -> tuple[int, ...]:
        """The leading shape: () for one group, (G,) for a stack of G groups."""
        return self.m.shape[:-1]

    @classmethod
    def groups(cls, m: np.ndarray) -> Stacked:
        """Many equal-size groups from their magnitudes, (groups, H): a Stacked list of them."""
        m = np.asarray(m, dtype=np.float64)
        rank = magnitude_rank(m)
        return Stacked([cls(i, m[i], rank[i]) for i in range(len(m))], cls(-1, m, rank))

    @classmethod
    def from_magnitudes(cls, index: int, m: np.ndarray, taylor: np.ndarray | None = None,
                        extra: dict | None = None) -> BlockStats:  # fmt: skip
        """Stats of a block from its magnitudes (the rank by `magnitude_rank`), and any others."""
        m = np.asarray(m, dtype=np.float64)
        return cls(index, m, magnitude_rank(m), taylor, dict(extra or {}))

    def need(self, name: str, scorer: str) -> np.ndarray:
        """The statistic `name` (`EXTRA`), or a one-line error naming the scorer that needs it."""
        if name not in self.extra:
            raise ParameterError(f"scorer {scorer!r} needs the statistic {name!r}, which this unit does not "
                                 f"provide (it provides: {', '.join(sorted(self.extra)) or 'none'})")  # fmt: skip
        return self.extra[name]

    @property
    def H(self) -> int:
        return self.m.shape[-1]

    @property
    def u(self) -> np.ndarray:
        """Normalised rank u_c = r_c / (H - 1) in [0, 1]."""
        return self.rank / max(1, self.H - 1)

    @cached_property
    def rank_order(self) -> np.ndarray:
        """Channel indices by ascending rank: `phi[rank]` reads phi at each channel's rank."""
        return np.argsort(self.rank, axis=-1, kind="stable")


# The statistics beside m that a unit may provide (per group, channel last), for the published
# criteria. Weight statistics, with the stats: "in_norm", "out_norm" (L2 of a channel's input-side
# and output-side weights), "l1" (L1 of both), "out_abs_mean" (mean |output-side weight|),
# "vectors" (channel x weights: both sides, for distances between channels), "bn_scale" (|γ| of
# the BN after the first conv). Calibration statistics, per seed: "act_abs_mean", "act_l2",
# "act_var" (mean |a|, L2 norm and variance of the channel's activation over calibration samples
# and positions), "fisher" (Σ_w w² E[g_w²] over the channel's weights, per-sample gradients).
WEIGHT_STATS = ("in_norm", "out_norm", "l1", "out_abs_mean", "vectors", "bn_scale")
CALIBRATION_STATS = ("act_abs_mean", "act_l2", "act_var", "fisher")


def with_taylor(stats: list[BlockStats], taylor: list[np.ndarray]) -> list[BlockStats]:
    out = [replace(b, taylor=t) for b, t in zip(stats, taylor, strict=True)]
    if isinstance(stats, Stacked):
        return Stacked(out, replace(stats.whole, taylor=stacked(taylor)))
    return out


def with_extra(stats: list[BlockStats], extra: dict[str, list[np.ndarray]]) -> list[BlockStats]:
    """The stats with further named statistics, one array per group (e.g. calibration ones)."""
    return [replace(b, extra={**b.extra, **{k: v[i] for k, v in extra.items()}}) for i, b in enumerate(stats)]


def along_rank(scores: np.ndarray, block: BlockStats) -> np.ndarray:
    """The score curve s(r): scores ordered by ascending magnitude rank (per group of a stack)."""
    return np.take_along_axis(np.asarray(scores, dtype=np.float64), block.rank_order, axis=-1)


def is_monotone_in_rank(scores: np.ndarray, block: BlockStats) -> bool:
    """True when the scores never decrease along rank (in every group of a stack)."""
    return bool(np.all(np.diff(along_rank(scores, block), axis=-1) >= 0))
