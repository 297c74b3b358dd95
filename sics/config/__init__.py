"""Profiles as data: which named profile a run uses, and what `auto` stands for on this machine.

A profile (`sics.config.profile`) holds its model's config, one class per model family
(`sics.config.models`), its data budget, its training recipe and its study's grid; the named
ones are in `sics.config.profiles`.
"""

from __future__ import annotations

import os
import sys

from ..errors import ParameterError
from ..hardware import cuda_available, device_type
from ..paths import figures_root
from .models import ImageConfig, LMConfig, ModelConfig, ResNetConfig, ViTConfig
from .profile import Profile
from .profiles import ARCHITECTURES, PROFILES

__all__ = ["ARCHITECTURES", "PROFILES", "ImageConfig", "LMConfig", "ModelConfig", "Profile", "ResNetConfig", "ViTConfig", "architecture_profile",
           "auto_profile", "pick_device", "pretrained_weights_here", "resolve_profile"]  # fmt: skip


def architecture_profile(vit_profile: str, arch: str) -> str:
    """The profile of architecture `arch` to study beside the ViT profile `vit_profile`."""
    if arch not in ARCHITECTURES:
        raise ParameterError(f"unknown architecture {arch!r}; valid: {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[arch].get(vit_profile, arch)


def pretrained_weights_here(model_name: str = "vit_small_patch16_224") -> str | None:
    """Where the `paper` profile's pretrained weights are on this machine without a download:
    the file `SICS_WEIGHTS` names, or timm's copy in the Hugging Face cache; None when neither."""
    named = os.environ.get("SICS_WEIGHTS")
    if named:
        if not os.path.isfile(os.path.expanduser(named)):
            raise ParameterError(f"SICS_WEIGHTS names {named!r}, which is not a file")
        return named
    try:
        import timm
        from huggingface_hub import try_to_load_from_cache

        repo = timm.models.get_pretrained_cfg(model_name).hf_hub_id
        for filename in ("model.safetensors", "pytorch_model.bin"):
            found = try_to_load_from_cache(repo, filename)
            if isinstance(found, str):
                return found
    except Exception:  # no hub client or no registry entry: nothing cached to use
        return None
    return None


def auto_profile() -> tuple[str, str]:
    """(profile, why) that `auto` stands for on this machine.

    With CUDA: `paper` where its pretrained weights are here (`pretrained_weights_here`), else
    `scratch` (a lent GPU machine has no network to fetch them). Without CUDA, `reference` once
    its trained weights and its results bundle are committed (its outputs then regenerate in
    minutes), else `quick`.
    """
    if cuda_available():
        if pretrained_weights_here():
            return "paper", "CUDA is available and so are the pretrained ViT-Small weights"
        return "scratch", ("CUDA is available but no pretrained ViT-Small weights are on this machine "
                           "(SICS_WEIGHTS or the Hugging Face cache); PROFILE=paper WEIGHTS=file for the paper's setting")  # fmt: skip
    ref = figures_root() / "reference"
    if (ref / "weights.safetensors").exists() and (ref / "results.zip").exists():
        return "reference", "no CUDA; the reference model's weights and results are committed"
    return "quick", "no CUDA: CPU smoke-scale preview"


def resolve_profile(name: str | None = "auto", **overrides) -> Profile:
    """Pick the profile by parameter, then `SICS_PROFILE`, then `auto` (see `auto_profile`).

    `auto` says on stderr what it chose, so nobody mistakes a CPU run for the paper's setting.
    """
    chosen = name if name not in (None, "", "auto") else os.environ.get("SICS_PROFILE") or "auto"
    if chosen == "auto":
        chosen, why = auto_profile()
        print(f"[sics] profile 'auto' -> '{chosen}' ({why})", file=sys.stderr)
    if chosen not in PROFILES:
        raise ParameterError(f"unknown profile {chosen!r}; valid: {', '.join(PROFILES)}, auto")
    profile = PROFILES[chosen]
    return profile.replace(**overrides) if overrides else profile


def pick_device(device: str | None = None):
    """The torch.device: `cuda` when there is one, else CPU; `SICS_DEVICE` or the argument
    override (imports torch: `hardware.device_type` answers without it)."""
    import torch

    device = device or os.environ.get("SICS_DEVICE")
    return torch.device(device) if device else torch.device(device_type())
