"""Applying MLP-channel masks to a ViT: zeroing hidden channels after the activation (a forward
hook), or slicing fc1 rows and fc2 columns out. Both give the same logits; the sliced model is the
faster one to evaluate. The masks come from the one selection path (`sics.selection.select`)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.nn.utils import skip_init

from .models import mlp_blocks


@contextmanager
def zeroed(modules: list[nn.Module], masks: list[np.ndarray], channel_dim: int = -1,
           model: nn.Module | None = None) -> Iterator[nn.Module | None]:  # fmt: skip
    """Temporarily multiply the output of each module by its keep-mask along `channel_dim`
    (a forward hook): the pruned units' activations are zero, as if they were removed."""
    handles = []
    for module, m in zip(modules, masks, strict=True):
        keep = torch.as_tensor(m, dtype=torch.float32)

        def hook(_m, _i, out, k=keep):
            shape = [1] * out.dim()
            shape[channel_dim] = -1
            return out * k.to(out.device, out.dtype).view(shape)

        handles.append(module.register_forward_hook(hook))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def masked(model: nn.Module, masks: list[np.ndarray]):
    """Temporarily zero the pruned hidden channels (after the activation) of every block."""
    return zeroed([mlp.act for mlp in mlp_blocks(model)], masks, -1, model)


def sliced(model: nn.Module, masks: list[np.ndarray]) -> nn.Module:
    """A copy of the model with the pruned channels physically removed from fc1 and fc2.

    A block may keep no channel at all: its MLP then adds only fc2's bias.
    """
    pruned = copy.deepcopy(model)
    for mlp, m in zip(mlp_blocks(pruned), masks, strict=True):
        if not isinstance(mlp.norm, nn.Identity):
            raise NotImplementedError("slicing an MLP with a hidden norm layer is not supported")
        keep = torch.as_tensor(np.flatnonzero(m), device=mlp.fc1.weight.device)
        fc1, fc2 = mlp.fc1, mlp.fc2
        like = dict(device=fc1.weight.device, dtype=fc1.weight.dtype)  # no init: copied below
        with warnings.catch_warnings():  # an empty block's layers: torch warns that init is a no-op
            warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
            new1 = skip_init(nn.Linear, fc1.in_features, len(keep), bias=fc1.bias is not None, **like)
            new2 = skip_init(nn.Linear, len(keep), fc2.out_features, bias=fc2.bias is not None, **like)
        with torch.no_grad():
            new1.weight.copy_(fc1.weight[keep])
            if fc1.bias is not None:
                new1.bias.copy_(fc1.bias[keep])
            new2.weight.copy_(fc2.weight[:, keep])
            if fc2.bias is not None:
                new2.bias.copy_(fc2.bias)
        mlp.fc1, mlp.fc2 = new1, new2
    return pruned
