"""Build the timm ViT of a profile; load pretrained weights from the hub or a local file."""

from __future__ import annotations

import os
from pathlib import Path

import timm
import torch
from torch import nn

from .bf16 import full_precision
from .config import Profile
from .errors import CheckpointError
from .resnet import CifarResNet

NUM_CLASSES = 10


def build_model(profile: Profile, weights: str | os.PathLike | None = None) -> nn.Module:
    """The profile's model with a 10-way head: a timm ViT, or a CIFAR ResNet (`sics.resnet`).

    For a pretrained profile the ImageNet weights come from `weights` (a local .pth/.bin/
    .safetensors/.npz file, or `SICS_WEIGHTS`) or else from the Hugging Face hub; timm drops the
    1000-way classifier and resizes the position embedding where the geometry differs.
    """
    if profile.model_name == "cifar_resnet":
        return CifarResNet(profile.depth, profile.embed_dim, NUM_CLASSES, channels_last=profile.channels_last,
                           pool_first=profile.pool_first, logit_scale=profile.logit_scale)
    kwargs = dict(
        num_classes=NUM_CLASSES,
        img_size=profile.img_size,
        patch_size=profile.patch_size,
        embed_dim=profile.embed_dim,
        depth=profile.depth,
        num_heads=profile.num_heads,
        mlp_ratio=profile.mlp_ratio,
        drop_path_rate=profile.drop_path,
    )
    if not profile.pretrained:
        return timm.create_model(profile.model_name, pretrained=False, **kwargs)
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
            profile.model_name, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs
        )
    except Exception as e:
        where = f"file {str(weights)!r}" if weights else "the Hugging Face hub"
        raise CheckpointError(
            f"cannot load pretrained {profile.model_name} weights from {where} "
            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            "give a local file with SICS_WEIGHTS=path (or `make ... WEIGHTS=path`), "
            "or use PROFILE=scratch"
        ) from None


class FP32Linear(nn.Linear):
    """A Linear that computes in fp32 under autocast: the classifier whose argmax is the result."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with full_precision(x.device.type):
            return super().forward(x.float())


class FP32LayerNorm(nn.LayerNorm):
    """A LayerNorm that computes in fp32 under autocast (the norm before the classifier)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with full_precision(x.device.type):
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


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def flops_per_image(model: nn.Module, profile: Profile) -> float:
    """Forward multiply-add FLOPs (x2) per image, counted by torch's FLOP counter.

    Attention is counted through the math backend: the counter has no rule for the fused CPU
    kernel, and the count should not depend on the device it was taken on.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, profile.img_size, profile.img_size, device=next(model.parameters()).device)
    was_training = model.training
    model.eval()
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(x)
    model.train(was_training)
    return float(counter.get_total_flops())
