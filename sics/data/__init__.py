"""The data layer: CIFAR-10 from its sources into cached uint8 tensors (`sources`), and batches
normalised and augmented on the device (`batches`).

The package imports no torch by itself: its names load their module on first use, so code that
only reads committed results (the class names, a type) does not pay for torch.
"""

from __future__ import annotations

import importlib

from .classes import CLASSES

_LAZY = {"DeviceBatches": "batches", "cutout": "batches", "random_crop": "batches", "HOW_TO_PROVIDE": "sources",
         "Cifar10": "sources", "load_cifar10": "sources"}  # fmt: skip


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["CLASSES", "HOW_TO_PROVIDE", "Cifar10", "DeviceBatches", "cutout", "load_cifar10", "random_crop"]
