"""Accuracy, and per-image correctness (the unit of the paired statistics), on a split."""

from __future__ import annotations

import torch
from torch import nn

from ..data import DeviceBatches
from .precision import autocast


@torch.no_grad()
def predict_correct(model: nn.Module, split: DeviceBatches, batch_size: int = 1024,
                    eval_precision: str = "auto") -> torch.Tensor:  # fmt: skip
    """Boolean vector: was test image i classified correctly (kept on the device, no syncs)."""
    was_training = model.training
    model.eval()
    out = []
    with autocast(split.device, eval_precision):
        for x, y in split.batches(batch_size):
            out.append(model(x).argmax(1) == y)
    model.train(was_training)
    return torch.cat(out)


def accuracy(model: nn.Module, split: DeviceBatches, batch_size: int = 1024, eval_precision: str = "auto") -> float:
    """Top-1 accuracy as a fraction in [0, 1]."""
    return predict_correct(model, split, batch_size, eval_precision).float().mean().item()
