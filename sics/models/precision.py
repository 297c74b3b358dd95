"""Which precision a model computes in: bf16 autocast where it is fast, fp32 elsewhere, bf16
emulated in fp32 on CPUs without bf16 units (`bf16`), and the fp32 layers where a decision is
made (`fp32_decisions`)."""

from __future__ import annotations

import torch
from torch import nn

from ..hardware import EVAL_PRECISIONS as EVAL_PRECISIONS
from ..hardware import cpu_has_fast_bf16 as cpu_has_fast_bf16
from ..hardware import emulates_bf16, uses_bf16
from ..hardware import precision as precision
from ..hardware import precision_label as precision_label
from . import bf16


def autocast(device: torch.device, eval_precision: str = "auto", *, cpu_auto: bool = True,
             emulate: bool = True):  # fmt: skip
    """bf16 autocast where the hardware runs it fast (CUDA; CPUs with AMX or AVX-512 BF16), full
    precision elsewhere, unless told otherwise (`eval_precision`).

    A profile whose results are committed fixes its precision (its bundle was measured in it, and
    new results must pair with the bundle's on the same images), whatever the machine: on a CPU
    without bf16 units that bf16 is emulated in fp32 arithmetic (`sics.models.bf16`), unless `emulate`
    is False. `cpu_auto=False` makes "auto" mean bf16 on CUDA only (training: the weights a
    profile trains must not depend on which CPU trained them).
    """
    device = torch.device(device)
    if emulate and cpu_auto and emulates_bf16(device, eval_precision):
        return bf16.EmulatedBf16()
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(device, eval_precision, cpu_auto))


class FP32Linear(nn.Linear):
    """A Linear that computes in fp32 under autocast: the classifier whose argmax is the result."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with bf16.full_precision(x.device.type):
            return super().forward(x.float())


class FP32LayerNorm(nn.LayerNorm):
    """A LayerNorm that computes in fp32 under autocast (the norm before the classifier)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with bf16.full_precision(x.device.type):
            return super().forward(x.float())


def fp32_decisions(model: nn.Module) -> nn.Module:
    """Run the final norm and the classifier of `model` in fp32, whatever the autocast around them.

    In bf16 two top logits closer than one bf16 step (2^-8 relative) tie, or swap, so per-image
    correctness would depend on rounding; in fp32 they do not. The modules keep their parameters
    and state-dict names (only their class changes), so weights load and copy as before.
    """
    head, norm = getattr(model, "head", None), getattr(model, "norm", None)
    if type(head) is nn.Linear:
        head.__class__ = FP32Linear
    if type(norm) is nn.LayerNorm:
        norm.__class__ = FP32LayerNorm
    return model
