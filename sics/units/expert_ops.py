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
