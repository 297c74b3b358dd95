"""Accuracy, and per-image correctness (the unit of the paired statistics), on a split."""

from __future__ import annotations

import torch
from torch import nn

from .data import DeviceBatches
from .errors import ParameterError

EVAL_PRECISIONS = ("auto", "fp32", "bf16")


def _bf16(device: torch.device, eval_precision: str = "auto") -> bool:
    if eval_precision not in EVAL_PRECISIONS:
        raise ParameterError(f"unknown evaluation precision {eval_precision!r}; valid: {', '.join(EVAL_PRECISIONS)}")
    return device.type == "cuda" if eval_precision == "auto" else eval_precision == "bf16"


def autocast(device: torch.device, eval_precision: str = "auto"):
    """bf16 autocast on CUDA (fast tensor cores), full precision elsewhere, unless told otherwise.

    A profile may train (`train_precision`) or evaluate (`eval_precision`) in bf16 on a CPU too,
    where it speeds up training 1.3x and the study's many evaluations 2x on CPUs with bf16 units.
    """
    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=_bf16(device, eval_precision))


def precision(device: torch.device, eval_precision: str = "auto") -> str:
    """Device type and the precision evaluations run in there, e.g. 'cpu-fp32', 'cuda-bf16'.

    Part of every cache key of predictions: bf16 and fp32 logits can rank a near-tie differently.
    """
    device = torch.device(device)
    return f"{device.type}-{'bf16' if _bf16(device, eval_precision) else 'fp32'}"


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
