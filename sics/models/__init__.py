"""The model layer: a registry by family (`vit`, `resnet`; each builds, names and describes its
models), the precision models compute in, per-image evaluation, and FLOPs."""

from __future__ import annotations

import os

from ..config import Profile
from ..data.classes import CLASSES
from .families import FAMILIES, Family, family, register_family

NUM_CLASSES = len(CLASSES)


def geometry(profile: Profile) -> str:
    """The model in a few words, e.g. '6x128, H=512, patch 4' or 'ResNet-9, width 32'."""
    return family(profile).geometry(profile.model)


def model_label(profile: Profile) -> str:
    """What the model is, for tables: never a pretrained name for a from-scratch model."""
    return family(profile).label(profile.model)


def build_model(profile: Profile, weights: str | os.PathLike | None = None):
    """The profile's model (see its family: `sics.models.vit` and `.resnet`, with a 10-way head;
    `.lm`, a byte-level language model)."""
    return family(profile).build(profile, weights)


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def fp32_decisions(model):
    """`precision.fp32_decisions`: the final norm and classifier in fp32 (imports torch)."""
    from .precision import fp32_decisions as fp32

    return fp32(model)


def flops_per_image(model, profile: Profile) -> float:
    """Forward multiply-add FLOPs (x2) per image, counted by torch's FLOP counter.

    Attention is counted through the math backend: the counter has no rule for the fused CPU
    kernel, and the count should not depend on the device it was taken on.
    """
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, profile.model.img_size, profile.model.img_size, device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return float(counter.get_total_flops())


__all__ = ["FAMILIES", "NUM_CLASSES", "Family", "build_model", "count_params", "family", "flops_per_image",
           "fp32_decisions", "geometry", "model_label", "register_family"]
