"""Published pruning criteria as registered scorers, for channel units (MLP and conv channels).

Each reads statistics its unit provides (`groups.WEIGHT_STATS`, `groups.CALIBRATION_STATS`); the
formulas, with channel c of a group, are in docs/protocol.md ("Published criteria"):

- `l1_magnitude`: ‖w_in,c‖₁ + ‖w_out,c‖₁ (fc1 row and fc2 column; conv1 filter and conv2 slice)
- `fc1_norm`, `fc2_norm`: ‖w_in,c‖₂ and ‖w_out,c‖₂ alone
- `lamp` (Lee et al. 2021), structured: m_c² / Σ_{j: m_j ≥ m_c} m_j², within each block; a
  strictly increasing transform of m there, so under per-block allocation it keeps magnitude's
  channels, and under global allocation it normalises each block before the global cut
- `fpgm` (He et al. 2019): Σ_j ‖v_c − v_j‖₂ over the block's channels, v_c = [w_in,c, w_out,c]: a
  channel near the others (the geometric median) is redundant
- `bn_scale` (Liu et al. 2017, network slimming): |γ_c| of the BN after conv1
- `activation`: mean |a_c| over the calibration samples and positions
- `wanda` (Sun et al. 2024), structured: ‖a_c‖₂ · mean_i |w_out[i, c]|
- `flap` (An et al. 2024): Var(a_c) · ‖w_out,c‖₂², the fluctuation of the channel's input to the
  output projection times the squared norm of its column
- `hessian` (LeCun et al. 1990, OBD): Σ_w w² · E[g_w²] over the channel's weights, the empirical
  Fisher (per-sample gradients of the loss) for the Hessian's diagonal

and the paper's adaptive selector, `sics_adaptive`, whose κ depends on S through boundaries fixed
before any of our results were read: magnitude below S = 0.65, a κ=1 class (logistic_smooth)
from 0.65 to 0.75, a κ=2 class (logistic_raw) from 0.75.
"""

from __future__ import annotations

import numpy as np

from .. import paper
from . import scorers as sc
from .groups import BlockStats
from .scorers import register

# Each criterion's kind is on its registration (`criterion=`): `scorers.published()` lists them
# (weight, data, then the references gradient and random), `scorers.c1_family()` C1's measured family.
ADAPTIVE_BOUNDARIES = paper.BOUNDARIES  # the paper's, fixed in advance
ADAPTIVE_CLASSES = ("magnitude", "logistic_smooth", "logistic_raw")  # below, between, above


@register("l1_magnitude", kappa="criterion", batched=True, criterion="weight")
def l1_magnitude(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.need("l1", "l1_magnitude")


@register("fc1_norm", kappa="criterion", batched=True, criterion="weight")
def fc1_norm(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.need("in_norm", "fc1_norm")


@register("fc2_norm", kappa="criterion", batched=True, criterion="weight")
def fc2_norm(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.need("out_norm", "fc2_norm")


@register("lamp", kappa="criterion", batched=True, criterion="weight", c1=False)  # magnitude per block
def lamp(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    """Per block (`block_id` in a pooled group, else the group): w² over the sum of w² of the
    channels ranked at or above it."""
    ids = block.extra.get("block_id")
    if ids is None:
        return _lamp(block.m)
    out = np.empty_like(block.m)
    for b in np.unique(ids):
        out[ids == b] = _lamp(block.m[ids == b])
    return out


def _lamp(m: np.ndarray) -> np.ndarray:
    """LAMP along the last axis: m² / (the sum of m² over the channels not smaller than it)."""
    sq = np.asarray(m, dtype=np.float64) ** 2
    order = np.argsort(sq, axis=-1, kind="stable")
    tail = np.flip(np.cumsum(np.flip(np.take_along_axis(sq, order, -1), -1), -1), -1)
    out = np.empty_like(sq)
    np.put_along_axis(out, order, np.take_along_axis(sq, order, -1) / tail, -1)
    return out


@register("fpgm", kappa="criterion", criterion="weight")
def fpgm(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    v = block.need("vectors", "fpgm")
    sq = (v * v).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * v @ v.T, 0.0)
    return np.sqrt(d2).sum(1)


@register("bn_scale", kappa="criterion", batched=True, criterion="weight", c1=False)  # reads the BN, not the channel
def bn_scale(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.need("bn_scale", "bn_scale")


@register("activation", kappa="criterion", stochastic=True, needs=("act_abs_mean",), batched=True,
          criterion="data")  # fmt: skip
def activation(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.need("act_abs_mean", "activation")


@register("wanda", kappa="criterion", stochastic=True, needs=("act_l2",), batched=True,
          criterion="data")  # fmt: skip
def wanda(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.need("act_l2", "wanda") * block.need("out_abs_mean", "wanda")


@register("flap", kappa="criterion", stochastic=True, needs=("act_var",), batched=True,
          criterion="data")  # fmt: skip
def flap(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.need("act_var", "flap") * block.need("out_norm", "flap") ** 2


@register("hessian", kappa="criterion", stochastic=True, needs=("fisher",), batched=True,
          criterion="data")  # fmt: skip
def hessian(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.need("fisher", "hessian")


@register("sics_adaptive", kappa="criterion", stochastic=True, batched=True)
def sics_adaptive(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    """magnitude below S = 0.65, logistic_smooth from 0.65, logistic_raw from 0.75 (defaults)."""
    chosen = ADAPTIVE_CLASSES[int(np.searchsorted(ADAPTIVE_BOUNDARIES, S, side="right"))]
    return sc.get_scorer(chosen).fn(block, S, rng)


@register("matched_random", kappa="matched", stochastic=True, matches=True)
def matched_random(groups: list[BlockStats], S: float, rng: np.random.Generator, target: list[np.ndarray],
                   reference: list[np.ndarray], *, of: str = "logistic_raw", reach: float = 0.3) -> list[np.ndarray]:  # fmt: skip
    """Magnitude's selection with, in every block, exactly as many channels swapped as `of`'s
    selection swaps there, drawn at random near the cut: d kept channels with |u − S| ≤ `reach`
    (3 σ_E of the envelope, the non-monotone classes' reach) out, d pruned ones as near in.
    Scores: u, with the swapped-out at -1 and the swapped-in at 2 (so top-k keeps exactly them)."""
    out = []
    for block, t, r in zip(groups, target, reference, strict=True):
        d = int((t & ~r).sum())
        near = np.abs(block.u - S) <= reach
        s = block.u.astype(np.float64).copy()
        for pool, value in ((r, -1.0), (~r, 2.0)):
            inside, outside = np.flatnonzero(pool & near), np.flatnonzero(pool & ~near)
            picked = rng.permutation(inside)[:d]
            if len(picked) < d:  # the window holds too few: the nearest others fill in
                rest = outside[np.argsort(np.abs(block.u[outside] - S), kind="stable")]
                picked = np.concatenate([picked, rest[: d - len(picked)]])
            s[picked] = value
        out.append(s)
    return out


def applicable(names, stats: list[BlockStats]) -> list[str]:
    """The criteria of `names` whose weight statistics the unit provides (bn_scale needs a BN)."""
    have = set.intersection(*(set(b.extra) for b in stats)) if stats else set()
    need = {"l1_magnitude": "l1", "fc1_norm": "in_norm", "fc2_norm": "out_norm", "fpgm": "vectors",
            "bn_scale": "bn_scale", "wanda": "out_abs_mean", "flap": "out_norm"}  # fmt: skip
    return [n for n in names if need.get(n) is None or need[n] in have]
