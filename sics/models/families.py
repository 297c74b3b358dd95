"""Model families, registered by name, without importing torch: which `model_name`s a family
builds, how it describes a profile's model, and where its builder lives (imported only when a
model is built). A new family registers here, from inside the package or outside it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import Profile
from ..errors import ParameterError


@dataclass(frozen=True)
class Family:
    name: str
    builds: Callable[[str], bool]  # whether this family builds a profile's `model_name`
    geometry: Callable[[Profile], str]  # the model in a few words, e.g. '6x128, H=512, patch 4'
    label: Callable[[Profile], str]  # what the model is, for tables
    # (profile, weights) -> nn.Module, or "module:function" naming it, imported on first use
    builder: str | Callable[[Profile, Any], Any]

    def build(self, profile: Profile, weights=None):
        if callable(self.builder):
            return self.builder(profile, weights)
        module, _, function = self.builder.partition(":")
        return getattr(importlib.import_module(module), function)(profile, weights)


FAMILIES: dict[str, Family] = {}


def register_family(family: Family) -> Family:
    FAMILIES[family.name] = family
    return family


def family(profile: Profile) -> Family:
    """The family that builds the profile's model."""
    for fam in FAMILIES.values():
        if fam.builds(profile.model_name):
            return fam
    known = ", ".join(FAMILIES)
    raise ParameterError(f"no model family builds {profile.model_name!r}; known families: {known}")


def _vit_geometry(p: Profile) -> str:
    return f"{p.depth}x{p.embed_dim}, H={p.mlp_hidden}, patch {p.patch_size}"


def _vit_label(p: Profile) -> str:
    # never a pretrained name for a from-scratch model
    if p.pretrained:
        return f"{p.model_name} ({_vit_geometry(p)}), pretrained, @ {p.img_size}px"
    return f"ViT {_vit_geometry(p)} @ {p.img_size}px, from scratch"


def _resnet_geometry(p: Profile) -> str:
    return f"ResNet-{p.depth}, width {p.embed_dim}"


register_family(Family("vit", lambda name: name.startswith("vit_"), _vit_geometry, _vit_label,
                       "sics.models.vit:build"))  # fmt: skip
register_family(Family("resnet", lambda name: name == "cifar_resnet", _resnet_geometry,
                       lambda p: f"CIFAR {_resnet_geometry(p)} @ {p.img_size}px, from scratch",
                       "sics.models.resnet:build"))  # fmt: skip
