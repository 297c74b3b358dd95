"""Accuracy, and per-image correctness (the unit of the paired statistics), on a split."""

from __future__ import annotations

import torch
from torch import nn

from .data import DeviceBatches


def _bf16(device: torch.device) -> bool:
    return device.type == "cuda"


def autocast(device: torch.device):
    """bf16 autocast on CUDA (fast tensor cores); full precision elsewhere."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=_bf16(device))


def precision(device: torch.device) -> str:
    """Device type and the precision `autocast` evaluates in there, e.g. 'cpu-fp32', 'cuda-bf16'.

    Part of every cache key of predictions: bf16 and fp32 logits can rank a near-tie differently.
    """
    device = torch.device(device)
    return f"{device.type}-{'bf16' if _bf16(device) else 'fp32'}"


@torch.no_grad()
def predict_correct(model: nn.Module, split: DeviceBatches, batch_size: int = 1024) -> torch.Tensor:
    """Boolean vector: was test image i classified correctly (kept on the device, no syncs)."""
    was_training = model.training
    model.eval()
    out = []
    with autocast(split.device):
        for x, y in split.batches(batch_size):
            out.append(model(x).argmax(1) == y)
    model.train(was_training)
    return torch.cat(out)


def accuracy(model: nn.Module, split: DeviceBatches, batch_size: int = 1024) -> float:
    """Top-1 accuracy as a fraction in [0, 1]."""
    return predict_correct(model, split, batch_size).float().mean().item()
