"""Which precision a model computes in: bf16 autocast where it is fast, fp32 elsewhere, bf16
emulated in fp32 on CPUs without bf16 units (`bf16`), and the fp32 layers where a decision is
made (`fp32_decisions`)."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..errors import ParameterError
from . import bf16

EVAL_PRECISIONS = ("auto", "fp32", "bf16")


# oneDNN ISA levels (ONEDNN_MAX_CPU_ISA) below the first with native bf16 instructions
_NO_BF16_ISA = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI")


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bf16 matrix units (AMX or AVX-512 BF16) that oneDNN may use.

    Without them bf16 autocast is emulated and much slower than fp32: a forward pass of the
    reference ViT ran 6x slower in bf16 than in fp32 on an AVX2-only CPU.
    """
    if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() in _NO_BF16_ISA:
        return False
    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def uses_bf16(device: torch.device, eval_precision: str = "auto", cpu_auto: bool = True) -> bool:
    """Whether `autocast` with these arguments runs in bf16 here."""
    if eval_precision not in EVAL_PRECISIONS:
        raise ParameterError(f"unknown evaluation precision {eval_precision!r}; valid: {', '.join(EVAL_PRECISIONS)}")
    if eval_precision == "auto":
        return device.type == "cuda" or (cpu_auto and device.type == "cpu" and cpu_has_fast_bf16())
    return eval_precision == "bf16"


def emulates_bf16(device: torch.device, eval_precision: str = "auto") -> bool:
    """Whether an evaluation in this precision runs bf16 emulated in fp32 here (`sics.models.bf16`):
    bf16 on a CPU without bf16 matrix units, unless `SICS_BF16=native`."""
    device = torch.device(device)
    if device.type != "cpu" or not uses_bf16(device, eval_precision):
        return False
    chosen = bf16.mode()
    return chosen == "emulated" or (chosen == "auto" and not cpu_has_fast_bf16())


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


def precision(device: torch.device, eval_precision: str = "auto") -> str:
    """Device type and the precision evaluations run in there, e.g. 'cpu-fp32', 'cuda-bf16'.

    Part of every cache key of predictions: bf16 and fp32 logits can rank a near-tie differently.
    """
    device = torch.device(device)
    return f"{device.type}-{'bf16' if uses_bf16(device, eval_precision) else 'fp32'}"


def precision_label(device: torch.device, eval_precision: str = "auto") -> str:
    """`precision`, saying so where bf16 is emulated: 'cpu-bf16 (emulated in fp32)'."""
    label = precision(device, eval_precision)
    return f"{label} (emulated in fp32)" if emulates_bf16(device, eval_precision) else label


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
