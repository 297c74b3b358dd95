"""Model families, registered by name, without importing torch: each family's config class
(`sics.config.models`: a profile's `model` is one), how it describes a model, and where its
builder lives (imported only when a model is built). A new family registers here, from inside
the package or outside it."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..config import Profile
from ..config.models import LMConfig, ModelConfig, ResNetConfig, ViTConfig
from ..errors import ParameterError


@dataclass(frozen=True)
class Family:
    name: str
    config: type[ModelConfig]  # the family's config class: a profile's `model` says its family
    geometry: Callable[[Any], str]  # the config in a few words, e.g. '6x128, H=512, patch 4'
    label: Callable[[Any], str]  # what the model is, for tables
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
    """The family whose config the profile's model is."""
    for fam in FAMILIES.values():
        if type(profile.model) is fam.config:
            return fam
    known = ", ".join(FAMILIES)
    raise ParameterError(f"no model family has the config {type(profile.model).__name__}; known families: {known}")


def _vit_geometry(m: ViTConfig) -> str:
    return f"{m.depth}x{m.embed_dim}, H={m.mlp_hidden}, patch {m.patch_size}"


def _vit_label(m: ViTConfig) -> str:
    # never a pretrained name for a from-scratch model
    if m.pretrained:
        return f"{m.model_name} ({_vit_geometry(m)}), pretrained, @ {m.img_size}px"
    return f"ViT {_vit_geometry(m)} @ {m.img_size}px, from scratch"


def _resnet_geometry(m: ResNetConfig) -> str:
    return f"ResNet-{m.depth}, width {m.width}"


register_family(Family("vit", ViTConfig, _vit_geometry, _vit_label, "sics.models.vit:build"))
register_family(Family("resnet", ResNetConfig, _resnet_geometry,
                       lambda m: f"CIFAR {_resnet_geometry(m)} @ {m.img_size}px, from scratch",
                       "sics.models.resnet:build"))  # fmt: skip
register_family(Family("lm", LMConfig, lambda m: f"{m.n_layer}x{m.d_model}, {m.n_head} heads, context {m.context}",
                       lambda m: f"byte-level Llama LM {m.n_layer}x{m.d_model} ({m.n_head} heads, {m.n_kv_head} kv), "
                                 f"context {m.context}, from scratch",
                       "sics.models.lm:build"))  # fmt: skip
