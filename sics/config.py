"""Profiles as data: one frozen dataclass per named set of defaults.

A profile fixes the model geometry, the data budget and the training recipe. Every output
records which profile made it, so a `quick` number is never mistaken for a ViT-Small one.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from dataclasses import dataclass

from .errors import ParameterError
from .hardware import cuda_available, device_type
from .paths import figures_root


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    # model
    model_name: str = "vit_small_patch16_224"
    img_size: int = 32
    patch_size: int = 4
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_hidden: int = 1536
    pretrained: bool = False
    pool_first: bool = False  # ResNet-9 only: max-pool before BN + ReLU in each stage (cheaper)
    logit_scale: float = 1.0  # ResNet only: multiply the logits (Page uses 0.125, airbench 1/9)
    # normalisation (the pretrained cfg's for `paper`; CIFAR-10's for from-scratch models)
    mean: tuple[float, float, float] = (0.4914, 0.4822, 0.4465)
    std: tuple[float, float, float] = (0.2470, 0.2435, 0.2616)
    # data budget (None = the whole split)
    n_train: int | None = None
    n_test: int | None = None
    n_calib: int = 1024
    # training recipe
    epochs: int = 40
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 2.0
    label_smoothing: float = 0.1
    augment: str = "crop_flip"  # "none" | "flip" | "crop_flip" | "crop_flip_cutout" (8x8)
    drop_path: float = 0.0
    optimizer: str = "adamw"  # "adamw" | "sgd" (Nesterov momentum)
    momentum: float = 0.9  # sgd only
    channels_last: bool = False  # conv nets: channels-last memory format (faster on CPU)
    train_precision: str = "auto"  # "auto" (bf16 autocast on CUDA, fp32 elsewhere) | "fp32" | "bf16"
    train_seed: int = 0
    dataset: str = "cifar10"  # the data source (`sics.data.registry`)
    ckpt_every: int = 1  # epochs between resumable checkpoints (and the last epoch)
    ckpt_minutes: float | None = None  # or sooner, once this many minutes passed since the last
    # study
    unit: str = "mlp_channels"  # the pruning unit of this model's study (`sics.units`)
    sparsities: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8)
    n_seeds: int = 5  # seeds of every stochastic scorer on the main grid
    unit_seeds: tuple[tuple[str, int], ...] = ()  # other counts for other unit kinds, e.g. (("tokens", 10),)
    eval_batch_size: int = 1024
    eval_precision: str = "auto"  # "auto" (bf16 on CUDA, fp32 elsewhere) | "fp32" | "bf16"
    # the final norm and classifier, and token importance, in fp32 under a bf16 evaluation (no
    # argmax ties from rounding); off where a committed bundle was measured without it
    fp32_decisions: bool = False
    # beyond the paper: phase-diagram grid (start, stop, step) and ablation budget
    fine_grid: tuple[float, float, float] = (0.40, 0.90, 0.025)
    fine_seeds: int | None = None  # seeds on the fine grid (None: the main grid's, `seeds(unit)`)
    criteria_seeds: int | None = None  # seeds of notebook 09 at the main S (None: the main grid's)
    ablation_seeds: int = 3
    recovery_steps: int = 100  # steps of recovery fine-tuning in the recovery ablation
    ablation_sparsities: tuple[float, ...] | None = None  # None: the notebook's main sparsities

    def fine_sparsities(self) -> list[float]:
        """The phase diagram's sparsity grid: `fine_grid`'s start to stop (inclusive) by its step."""
        import numpy as np

        start, stop, step = self.fine_grid
        return [round(float(s), 4) for s in np.arange(start, stop + step / 2, step)]

    def seeds(self, unit: str) -> int:
        """Seeds of a stochastic scorer on the main grid of a study of `unit`."""
        return dict(self.unit_seeds).get(unit, self.n_seeds)

    @property
    def mlp_ratio(self) -> float:
        return self.mlp_hidden / self.embed_dim

    def replace(self, **changes) -> Profile:
        """A copy with some fields changed (notebook parameters override profile defaults)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ParameterError(f"unknown profile field(s) {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile(
            name="paper",
            description="timm vit_small_patch16_224, ImageNet-pretrained, CIFAR-10 at 224, fine-tuned",
            img_size=224,
            patch_size=16,
            pretrained=True,
            mean=(0.5, 0.5, 0.5),
            std=(0.5, 0.5, 0.5),
            epochs=3,
            batch_size=128,
            lr=1e-4,
            weight_decay=0.05,
            warmup_epochs=0.5,
            augment="crop_flip",
            eval_batch_size=512,
            recovery_steps=390,  # one epoch at batch 128
            fp32_decisions=True,
        ),
        Profile(
            name="scratch",
            description="ViT-Small geometry (12x384, 6 heads, H=1536) at 32x32, patch 4, from scratch",
            epochs=60,  # DeiT-style recipe; its GPU time and accuracy are not yet measured
            batch_size=512,
            lr=1e-3,
            weight_decay=0.05,
            warmup_epochs=5.0,
            drop_path=0.1,
            # about 256 MB of model and AdamW state a checkpoint: every 10 epochs or 2 minutes of
            # a GPU run, not every one of its 60 epochs (the checkpoint field changes no weights)
            ckpt_every=10,
            ckpt_minutes=2.0,
            n_seeds=3,
            eval_batch_size=2048,
            recovery_steps=98,  # one epoch at batch 512
            fp32_decisions=True,
        ),
        Profile(
            name="reference",
            description="from-scratch ViT (6x128, 4 heads, H=512, patch 4: 64 tokens + CLS) on the full "
                        "CIFAR-10, trained on a 2-core CPU; not ViT-Small",
            embed_dim=128,
            depth=6,
            num_heads=4,
            mlp_hidden=512,
            epochs=40,  # recipe from CPU pilots (docs/profiles.md); 77.7% in 156 min here
            batch_size=128,
            lr=2e-3,
            weight_decay=0.05,
            warmup_epochs=2.0,
            augment="crop_flip",
            n_seeds=20,  # enough for C3 by the power analysis (C4 would need up to 34); other parts keep theirs
            unit_seeds=(("tokens", 10),),  # tokens are cheap: 10 seeds, where the image noise dominates
            fine_seeds=5,
            criteria_seeds=5,
            eval_batch_size=1000,
            # sized for <= 60 min of study on a 2-core CPU with AMX (docs/profiles.md): bf16
            # evaluation (2x fp32 there, 6x slower on AVX2-only CPUs), the ablations at the S of
            # the paper's escape claims; fixed, since the committed results pair in it
            eval_precision="bf16",
            fine_grid=(0.40, 0.90, 0.05),
            ablation_seeds=3,
            ablation_sparsities=(0.7, 0.8),
            recovery_steps=100,
        ),
        Profile(
            name="quick",
            description="reduced ViT (6x128, 4 heads, H=512, patch 8): a smoke-scale CPU preview",
            patch_size=8,
            embed_dim=128,
            depth=6,
            num_heads=4,
            mlp_hidden=512,
            n_test=5000,
            n_calib=256,
            epochs=4,
            batch_size=128,
            lr=2e-3,
            weight_decay=0.05,
            warmup_epochs=0.5,
            augment="flip",
            n_seeds=3,
            eval_batch_size=1000,
            fine_grid=(0.40, 0.90, 0.05),
            ablation_seeds=1,
            recovery_steps=60,  # a sixth of an epoch: a CPU-sized taste of recovery
            fp32_decisions=True,
        ),
        Profile(
            name="ci",
            description="tiny ViT (4x32, 2 heads, H=128, patch 8) for tests; numbers mean nothing",
            patch_size=8,
            embed_dim=32,
            depth=4,  # 4 independent blocks: a non-monotone scorer always changes some selection
            num_heads=2,
            mlp_hidden=128,
            n_train=1024,
            n_test=512,
            n_calib=64,
            epochs=1,
            batch_size=128,
            lr=2e-3,
            warmup_epochs=0.2,
            augment="flip",
            n_seeds=2,
            eval_batch_size=512,
            fine_grid=(0.40, 0.90, 0.1),
            ablation_seeds=1,
            recovery_steps=2,
            fp32_decisions=True,
        ),
        Profile(
            name="resnet",
            description="CIFAR ResNet-9 (Page's DAWNBench layout at half width: 32/64/128/256), trained "
                        "from scratch on a 2-core CPU; the conv-channel study of notebook 08",
            model_name="cifar_resnet",
            depth=9,  # Page's ResNet-9 (see sics.models.resnet); He's ResNet-20 reached 87.7% in 59 min here
            embed_dim=32,  # width of the prep conv
            num_heads=1,  # unused by a ResNet; part of its training key (the committed checkpoint id)
            mlp_hidden=256,  # the widest block's inner channels
            pool_first=True,  # Page's order: ~10% faster here (same eval function if BN scales > 0)
            logit_scale=0.125,  # Page's scaled classifier
            epochs=35,  # 90.01% in 57.5 min here (80-111 s each); 32 epochs without the two options: 89.94%
            batch_size=256,
            lr=0.2,
            weight_decay=5e-4,
            warmup_epochs=3.0,
            label_smoothing=0.2,  # as Page and airbench use
            augment="crop_flip_cutout",
            optimizer="sgd",
            channels_last=True,
            train_precision="bf16",  # 1.3x the fp32 throughput on a CPU with AMX units
            eval_precision="bf16",
            unit="conv_channels",
            n_seeds=20,  # enough for C3 by the power analysis (C4 would need up to 48); other parts keep theirs
            eval_batch_size=1000,
            fine_grid=(0.40, 0.90, 0.05),
            fine_seeds=5,
            criteria_seeds=20,  # at 5, the data-aware criteria and matched controls at S >= 0.7 were undecided
            ablation_seeds=3,
            recovery_steps=100,
        ),
        Profile(
            name="ci_resnet",
            description="tiny CIFAR ResNet-8 (widths 8/16/32) for tests; numbers mean nothing",
            model_name="cifar_resnet",
            depth=8,
            embed_dim=8,
            num_heads=1,
            mlp_hidden=32,
            n_train=1024,
            n_test=512,
            n_calib=64,
            epochs=1,
            batch_size=128,
            lr=0.05,
            weight_decay=5e-4,
            warmup_epochs=0.2,
            label_smoothing=0.0,
            augment="flip",
            optimizer="sgd",
            unit="conv_channels",
            n_seeds=2,
            eval_batch_size=512,
            fine_grid=(0.40, 0.90, 0.1),
            ablation_seeds=1,
            recovery_steps=2,
            fp32_decisions=True,
        ),
    ]
}

# The ResNet profile that goes with each ViT profile in notebook 08 (tests use the tiny one).
ARCHITECTURES = {"resnet": {"ci": "ci_resnet"}}


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
