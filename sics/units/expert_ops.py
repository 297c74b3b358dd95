"""The torch side of experts (MoEfication): an MLP that runs, per token, only the channels of
the experts chosen for it. Running k experts is the dense MLP with the other experts' channels
removed, so this is the channel unit's surgery, applied per token."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def expert_mask(labels: np.ndarray, chosen: torch.Tensor) -> torch.Tensor:
    """(tokens..., H) channel masks from the experts `chosen` per token (tokens..., E) and each
    channel's expert `labels` (H,)."""
    return chosen[..., torch.from_numpy(np.asarray(labels)).long()]


def moe_mlp(mlp: nn.Module, x: torch.Tensor, labels: np.ndarray, chosen: torch.Tensor) -> torch.Tensor:
    """A timm `Mlp` (fc1, act, drop1, norm, fc2, drop2) on `x` (..., D), each token running only
    the channels of its chosen experts (`chosen`: x's leading shape, E)."""
    h = mlp.norm(mlp.drop1(mlp.act(mlp.fc1(x))))
    h = h * expert_mask(labels, chosen).to(h.dtype)
    return mlp.drop2(mlp.fc2(h))


def expert_output_norms(mlp: nn.Module, x: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    """(tokens..., E): the norm of each expert's contribution to each token's MLP output, fc2's
    columns of the expert's channels times their activations (the oracle of MoEfication ranks the
    experts by it; fc2's bias belongs to no expert)."""
    h = mlp.norm(mlp.drop1(mlp.act(mlp.fc1(x))))
    labels = np.asarray(labels)
    E = int(labels.max()) + 1
    if np.all(np.bincount(labels, minlength=E) == len(labels) // E):  # balanced: one grouped matmul
        order = torch.from_numpy(np.argsort(labels, kind="stable")).long()
        grouped = h[..., order].unflatten(-1, (E, -1))  # (..., E, H/E)
        weight = mlp.fc2.weight[:, order].unflatten(-1, (E, -1)).to(h.dtype)  # (D, E, H/E)
        return torch.einsum("...ec,dec->...ed", grouped, weight).norm(dim=-1)
    onehot = torch.nn.functional.one_hot(torch.from_numpy(labels).long(), E).to(h.dtype)  # (H, E)
    return torch.einsum("...h,he,dh->...ed", h, onehot, mlp.fc2.weight.to(h.dtype)).norm(dim=-1)


def top_experts(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(tokens..., E) bool: each token's k experts of highest score."""
    chosen = torch.zeros_like(scores, dtype=torch.bool)
    return chosen.scatter(-1, scores.topk(k, dim=-1).indices, True)
