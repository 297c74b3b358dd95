"""bf16 autocast, emulated in fp32 arithmetic on CPUs without bf16 matrix units.

On an AVX2-only CPU oneDNN runs bf16 matrix products slowly (the reference ViT evaluated 6x
slower in bf16 than in fp32 there). Emulation gives the same rounding at fp32 speed: the inputs of
every op that CPU autocast runs in bf16 are rounded to bf16, the op runs in fp32, and its output is
rounded to bf16, as autocast returns it. The product of two bf16 numbers is exact in fp32, so for
matrix products and convolutions only the order of the fp32 accumulation differs from a native
kernel. Attention differs a little more: the native CPU kernel rounds the softmax weights to bf16
before multiplying by V, the emulation keeps them in fp32 (only its inputs and output are
rounded). Against the committed reference bundle (native bf16 on a CPU with AMX) verify's sample
differed on 6-14 images of 10,000 per result, where native bf16 on this AVX2 CPU differed on
3-16 (docs/profiles.md): another machine's bf16, within `MACHINE_TOLERANCE`.

`SICS_BF16` chooses: `auto` (default: emulate on CPUs without AMX or AVX-512 BF16), `native`,
`emulated`. Evaluation only: training always runs native autocast, so trained weights never
depend on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

# the ops of CPU autocast's bf16 list that the models here call
_LOW = frozenset({
    F.linear, F.conv1d, F.conv2d, F.conv3d, F.scaled_dot_product_attention, torch.matmul, torch.mm,
    torch.bmm, torch.addmm, torch.baddbmm, torch.addbmm, torch.Tensor.matmul, torch.Tensor.__matmul__,
    torch.Tensor.mm, torch.Tensor.bmm,
})  # fmt: skip
_suspended = 0


def _rounded(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.to(torch.bfloat16).float()
    if isinstance(value, (list, tuple)):
        return type(value)(_rounded(v) for v in value)
    return value


class EmulatedBf16(TorchFunctionMode):
    """Within it, autocast's bf16 ops take bf16-rounded inputs and return bf16 tensors."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in _LOW or _suspended:
            return func(*args, **kwargs)
        out = func(*_rounded(args), **{k: _rounded(v) for k, v in kwargs.items()})
        return out.to(torch.bfloat16) if isinstance(out, torch.Tensor) and out.is_floating_point() else out


@contextlib.contextmanager
def full_precision(device_type: str) -> Iterator[None]:
    """fp32 within, whether the bf16 around is native autocast or emulated."""
    global _suspended
    _suspended += 1
    try:
        with torch.autocast(device_type, enabled=False):
            yield
    finally:
        _suspended -= 1
