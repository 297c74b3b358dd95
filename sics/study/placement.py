"""Where a study evaluates and in which precision: its device, resolved without torch until a
model runs (`sics.hardware`), and the precision names that key its caches and label its rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import hardware
from ..config import pick_device


@dataclass
class Placement:
    spec: str | None  # the device asked for; None: `SICS_DEVICE`, else CUDA where there is one, else the CPU
    eval_precision: str = "auto"  # the profile's: auto | fp32 | bf16
    _device: Any = field(default=None, repr=False)

    @property
    def device(self):
        """The torch.device (imports torch)."""
        if self._device is None:
            self._device = pick_device(self.spec)
        return self._device

    @property
    def type(self) -> str:
        """'cpu' or 'cuda', without importing torch where it is not loaded."""
        return self._device.type if self._device is not None else hardware.device_type(self.spec)

    @property
    def precision(self) -> str:
        """Where and in which precision evaluations run, e.g. 'cpu-bf16' (`hardware.precision`)."""
        return hardware.precision(self.type, self.eval_precision)

    @property
    def emulated_bf16(self) -> bool:
        """Whether bf16 evaluations are emulated in fp32 here (`sics.models.bf16`)."""
        return hardware.emulates_bf16(self.type, self.eval_precision)

    @property
    def precision_label(self) -> str:
        """`precision`, with '(emulated in fp32)' where it is."""
        return hardware.precision_label(self.type, self.eval_precision)
