"""Per-block statistics every scorer may read (m, rank, u, calibration importance).

The bottom of the house: `scorers` and `complexity` import this module, and it imports neither.

Rank ties follow `prune.top_k`: among channels of equal magnitude the lower channel index gets
the higher rank, so keeping the top ranks keeps exactly the channels that keeping the top
magnitudes keeps (`top_k(u)` and `top_k(m)` agree even with tied magnitudes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .models import mlp_blocks


def magnitude_rank(m: np.ndarray) -> np.ndarray:
    """Ascending rank 0 .. H-1 of `m`; equal values: the lower index gets the higher rank."""
    m = np.asarray(m, dtype=np.float64)
    order = np.lexsort((-np.arange(len(m)), m))  # by m ascending, then by index descending
    rank = np.empty(len(m), dtype=np.int64)
    rank[order] = np.arange(len(m))
    return rank


@dataclass(frozen=True)
class BlockStats:
    """What a scorer may look at for one block's H MLP hidden channels."""

    index: int
    m: np.ndarray  # L2 norm of [fc1 row c, fc2 column c], float64
    rank: np.ndarray  # ascending rank of m, 0 .. H-1 (ties: lower index ranks higher)
    taylor: np.ndarray | None = None  # first-order Taylor importance (calibration), if computed

    @classmethod
    def from_magnitudes(cls, index: int, m: np.ndarray,
                        taylor: np.ndarray | None = None) -> BlockStats:  # fmt: skip
        """Stats of a block from its magnitudes alone (the rank by `magnitude_rank`)."""
        m = np.asarray(m, dtype=np.float64)
        return cls(index, m, magnitude_rank(m), taylor)

    @property
    def H(self) -> int:
        return len(self.m)

    @property
    def u(self) -> np.ndarray:
        """Normalised rank u_c = r_c / (H - 1) in [0, 1]."""
        return self.rank / max(1, self.H - 1)

    @property
    def rank_order(self) -> np.ndarray:
        """Channel indices by ascending rank: `phi[rank]` reads phi at each channel's rank."""
        return np.argsort(self.rank, kind="stable")


def block_stats(model: nn.Module) -> list[BlockStats]:
    """m_c and its rank for every block, from fc1 rows and fc2 columns (float64)."""
    out = []
    for i, mlp in enumerate(mlp_blocks(model)):
        w1 = mlp.fc1.weight.detach().double().cpu()
        w2 = mlp.fc2.weight.detach().double().cpu()
        m = torch.sqrt((w1**2).sum(1) + (w2**2).sum(0)).numpy()
        out.append(BlockStats.from_magnitudes(i, m))
    return out


def with_taylor(stats: list[BlockStats], taylor: list[np.ndarray]) -> list[BlockStats]:
    return [BlockStats(b.index, b.m, b.rank, t) for b, t in zip(stats, taylor, strict=True)]


def activation_taylor(model: nn.Module, acts: list[nn.Module], x: torch.Tensor, y: torch.Tensor,
                      batch_size: int = 64, channel_dim: int = -1) -> list[np.ndarray]:  # fmt: skip
    """I_c = Σ_batches (Σ_{samples, positions} a_c · ∂L/∂a_c)², with a the output of each module
    in `acts` and its channels along `channel_dim`: the first-order Taylor channel importance."""
    seen: dict[int, torch.Tensor] = {}

    def hook(i):
        def f(_module, _inp, out):
            out.retain_grad()
            seen[i] = out

        return f

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(acts)]
    was_training = model.training
    model.eval()
    total: list[torch.Tensor | None] = [None] * len(acts)
    try:
        for s in range(0, len(y), batch_size):
            model.zero_grad(set_to_none=True)
            xb, yb = x[s : s + batch_size], y[s : s + batch_size]
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            for i, a in seen.items():
                dims = tuple(d for d in range(a.dim()) if d != channel_dim % a.dim())
                per_channel = ((a.detach() * a.grad).sum(dim=dims).double()) ** 2
                total[i] = per_channel if total[i] is None else total[i] + per_channel
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return [t.cpu().numpy() for t in total]


def taylor_importance(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      batch_size: int = 64) -> list[np.ndarray]:  # fmt: skip
    """I_c = Σ_batches (Σ_{samples, tokens} a_c · ∂L/∂a_c)^2, a_c the post-GELU activation."""
    return activation_taylor(model, [mlp.act for mlp in mlp_blocks(model)], x, y, batch_size)


def along_rank(scores: np.ndarray, block: BlockStats) -> np.ndarray:
    """The score curve s(r): scores ordered by ascending magnitude rank."""
    return np.asarray(scores, dtype=np.float64)[block.rank_order]


def is_monotone_in_rank(scores: np.ndarray, block: BlockStats) -> bool:
    """True when the scores never decrease along rank."""
    return bool(np.all(np.diff(along_rank(scores, block)) >= 0))
