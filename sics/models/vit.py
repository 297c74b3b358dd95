"""The ViT family: a timm ViT of a profile's geometry, from scratch or with pretrained weights from
the hub or a local file."""

from __future__ import annotations

import os
from pathlib import Path

import timm
from torch import nn

from ..config import Profile
from ..data.classes import CLASSES
from ..errors import CheckpointError


def build(profile: Profile, weights: str | os.PathLike | None = None) -> nn.Module:
    """The profile's timm ViT with a 10-way head.

    For a pretrained profile the ImageNet weights come from `weights` (a local .pth/.bin/
    .safetensors/.npz file, or `SICS_WEIGHTS`) or else from the Hugging Face hub; timm drops the
    1000-way classifier and resizes the position embedding where the geometry differs.
    """
    cfg = profile.model
    kwargs = dict(
        num_classes=len(CLASSES),
        img_size=cfg.img_size,
        patch_size=cfg.patch_size,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio,
        drop_path_rate=profile.drop_path,
    )
    if not cfg.pretrained:
        return timm.create_model(cfg.model_name, pretrained=False, **kwargs)
    weights = weights or os.environ.get("SICS_WEIGHTS") or None
    overlay = None
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise CheckpointError(f"pretrained weights file {str(path)!r} does not exist")
        # timm turns `custom_load` off for a file overlay; the original JAX `.npz` weights need it
        # on (timm's own loader for them), every other format goes to load_state_dict
        overlay = dict(file=str(path), hf_hub_id=None, url=None, custom_load=path.suffix == ".npz")
    try:
        return timm.create_model(
            cfg.model_name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs
        )
    except Exception as e:
        where = f"file {str(weights)!r}" if weights else "the Hugging Face hub"
        raise CheckpointError(
            f"cannot load pretrained {cfg.model_name} weights from {where} "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "give a local file with SICS_WEIGHTS=path (or `make ... WEIGHTS=path`), "
            "or use PROFILE=scratch"
        ) from None
