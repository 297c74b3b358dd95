"""The named profiles. Why each recipe is what it is, and what it measured, is in docs/profiles.md
and the results log; here are only the settings."""

from __future__ import annotations

from .models import LMConfig, ResNetConfig, ViTConfig
from .profile import Profile

# The tiny ViT of the tests and the quick preview; the from-scratch ViT-Small geometry at CIFAR size
CI_VIT = ViTConfig(patch_size=8, embed_dim=32, depth=4, num_heads=2, mlp_hidden=128)
SMALL_VIT = ViTConfig(patch_size=8, embed_dim=128, depth=6, num_heads=4, mlp_hidden=512)

# What the tests' tiny profiles share: small data, one epoch, two seeds, one ablation seed.
SMOKE = dict(n_train=1024, n_test=512, n_calib=64, epochs=1, n_seeds=2, eval_batch_size=512,
             fine_grid=(0.40, 0.90, 0.1), ablation_seeds=1, recovery_steps=2, fp32_decisions=True)  # fmt: skip
# What the byte-level LMs' recipes share (the KV-cache study: docs/protocol.md).
LM_RECIPE = dict(dataset="text", weight_decay=0.1, warmup_epochs=0.1, label_smoothing=0.0, augment="none",
                 eval_precision="fp32", unit="kv_positions")  # fmt: skip

PROFILES: dict[str, Profile] = {
    p.name: p
    for p in [
        Profile(
            name="paper",
            description="timm vit_small_patch16_224, ImageNet-pretrained, CIFAR-10 at 224, fine-tuned",
            model=ViTConfig(img_size=224, patch_size=16, pretrained=True, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
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
            model=ViTConfig(),
            epochs=60,  # a DeiT-style recipe, not yet measured on a GPU
            batch_size=512,
            lr=1e-3,
            weight_decay=0.05,
            warmup_epochs=5.0,
            drop_path=0.1,
            # about 256 MB of model and AdamW state a checkpoint: every 10 epochs or 2 minutes
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
            model=ViTConfig(embed_dim=128, depth=6, num_heads=4, mlp_hidden=512),
            epochs=40,
            batch_size=128,
            lr=2e-3,
            weight_decay=0.05,
            warmup_epochs=2.0,
            augment="crop_flip",
            n_seeds=20,  # C3's power; C4 would need up to 34 (docs/profiles.md)
            unit_seeds=(("tokens", 10),),  # tokens are cheap, and the images dominate their noise
            fine_seeds=5,
            criteria_seeds=5,
            eval_batch_size=1000,
            # bf16 evaluation, fixed: the committed results pair in it (docs/profiles.md)
            eval_precision="bf16",
            fine_grid=(0.40, 0.90, 0.05),
            ablation_seeds=3,
            ablation_sparsities=(0.7, 0.8),
            recovery_steps=100,
        ),
        Profile(
            name="quick",
            description="reduced ViT (6x128, 4 heads, H=512, patch 8): a smoke-scale CPU preview",
            model=SMALL_VIT,
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
            recovery_steps=60,  # a sixth of an epoch
            fp32_decisions=True,
        ),
        Profile(
            name="ci",
            description="tiny ViT (4x32, 2 heads, H=128, patch 8) for tests; numbers mean nothing",
            model=CI_VIT,  # 4 independent blocks: a non-monotone scorer always changes some selection
            batch_size=128,
            lr=2e-3,
            warmup_epochs=0.2,
            augment="flip",
            **SMOKE,
        ),
        Profile(
            name="resnet",
            description="CIFAR ResNet-9 (Page's DAWNBench layout at half width: 32/64/128/256), trained "
                        "from scratch on a 2-core CPU; the conv-channel study of notebook 08",
            model=ResNetConfig(depth=9, width=32, pool_first=True, logit_scale=0.125),  # Page's order and head
            epochs=35,
            batch_size=256,
            lr=0.2,
            weight_decay=5e-4,
            warmup_epochs=3.0,
            label_smoothing=0.2,  # as Page and airbench use
            augment="crop_flip_cutout",
            optimizer="sgd",
            channels_last=True,
            train_precision="bf16",  # where the CPU has bf16 units (docs/profiles.md)
            eval_precision="bf16",
            unit="conv_channels",
            n_seeds=20,  # C3's power; C4 would need up to 48 (docs/profiles.md)
            eval_batch_size=1000,
            fine_grid=(0.40, 0.90, 0.05),
            fine_seeds=5,
            criteria_seeds=20,
            ablation_seeds=3,
            recovery_steps=100,
        ),
        Profile(
            name="ci_resnet",
            description="tiny CIFAR ResNet-8 (widths 8/16/32) for tests; numbers mean nothing",
            model=ResNetConfig(depth=8, width=8),
            batch_size=128,
            lr=0.05,
            weight_decay=5e-4,
            warmup_epochs=0.2,
            label_smoothing=0.0,
            augment="flip",
            optimizer="sgd",
            unit="conv_channels",
            **SMOKE,
        ),
        Profile(
            name="lm",
            description="byte-level Llama LM (4x256, 4 heads, context 512) trained from scratch on five of Jane "
                        "Austen's novels on a 2-core CPU; the KV-cache study's model",
            model=LMConfig(),
            epochs=4,  # passes' worth of training bytes (3.6 M): 826 steps of 32 x 544
            batch_size=32,
            lr=2e-3,
            train_precision="bf16",  # where the CPU has bf16 units (docs/profiles.md)
            n_test=256,  # held-out contexts of the study, spread over the novel (docs/protocol.md)
            n_seeds=10,
            fine_grid=(0.40, 0.90, 0.05),
            fine_seeds=3,
            **LM_RECIPE,
        ),
        Profile(
            name="lm_repeat",
            description="the lm recipe with half of the training sequences repeating a 16-64 byte span later on: "
                        "the search for an LM that uses its context (docs/protocol.md)",
            model=LMConfig(repeat_rate=0.5),
            epochs=4,
            batch_size=32,
            lr=2e-3,
            train_precision="bf16",
            n_test=256,
            n_seeds=10,
            fine_grid=(0.40, 0.90, 0.05),
            fine_seeds=3,
            **LM_RECIPE,
        ),
        Profile(
            name="ci_lm",
            description="tiny byte-level Llama LM (2x32, context 64) for tests; numbers mean nothing",
            model=LMConfig(n_layer=2, d_model=32, n_head=2, n_kv_head=2, d_ff=64, context=64),
            epochs=1,
            batch_size=8,
            lr=3e-3,
            train_precision="fp32",
            n_seeds=2,
            fine_grid=(0.40, 0.90, 0.1),
            fp32_decisions=True,
            **LM_RECIPE,
        ),
    ]
}

# The ResNet profile that goes with each ViT profile in notebook 08 (tests use the tiny one).
# The language model whose KV cache notebook 11 studies beside each ViT profile.
ARCHITECTURES = {"resnet": {"ci": "ci_resnet"}, "lm": {"ci": "ci_lm"}}
