"""One config per model family (timm's way: a model's geometry and its input normalisation), and
the explicit key of each, which keeps the checkpoint ids of every committed network stable.

A family's config holds only what its models use. `key()` writes it as the flat fields the
checkpoint ids were first hashed over (`sics.training.identity`), so a refactor of these classes
never changes an id: the identity test pins them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


@dataclass(frozen=True)
class ModelConfig:
    """What every family's config has: the name its family builds (a timm name, for a ViT)."""

    model_name: str = ""

    def key(self) -> dict:
        """The fields of the checkpoint key this config stands for (see the module docstring)."""
        raise NotImplementedError

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


@dataclass(frozen=True)
class ImageConfig(ModelConfig):
    """An image model's input: its size and normalisation (the pretrained cfg's, or CIFAR-10's)."""

    img_size: int = 32
    mean: tuple[float, float, float] = CIFAR_MEAN
    std: tuple[float, float, float] = CIFAR_STD


@dataclass(frozen=True)
class ViTConfig(ImageConfig):
    """A timm VisionTransformer: from scratch at CIFAR size, or a pretrained one by its timm name."""

    model_name: str = "vit_small_patch16_224"
    patch_size: int = 4
    embed_dim: int = 384
    depth: int = 12
    num_heads: int = 6
    mlp_hidden: int = 1536
    pretrained: bool = False

    @property
    def mlp_ratio(self) -> float:
        return self.mlp_hidden / self.embed_dim

    @property
    def tokens(self) -> int:
        """Patch tokens per image (the CLS token aside)."""
        return (self.img_size // self.patch_size) ** 2

    def key(self) -> dict:
        return dict(model_name=self.model_name, img_size=self.img_size, patch_size=self.patch_size,
                    embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads,
                    mlp_hidden=self.mlp_hidden, pretrained=self.pretrained, mean=self.mean, std=self.std)  # fmt: skip


@dataclass(frozen=True)
class ResNetConfig(ImageConfig):
    """A CIFAR ResNet (`sics.models.resnet`): depth 9 is Page's layout, 6n + 2 He's."""

    model_name: str = "cifar_resnet"
    depth: int = 9
    width: int = 32  # the prep conv's channels; the stages double it
    pool_first: bool = False  # ResNet-9 only: max-pool before BN + ReLU in each stage (cheaper)
    logit_scale: float = 1.0  # multiply the logits (Page uses 0.125, airbench 1/9)

    @property
    def widest(self) -> int:
        """Channels of the widest stage: 8w for ResNet-9 (32/64/128/256 at w = 32), 4w for He's."""
        return (8 if self.depth == 9 else 4) * self.width

    def key(self) -> dict:
        # The names a ViT's key has, as the first ResNet ids were hashed: the prep width under
        # `embed_dim`, the widest stage under `mlp_hidden`, one "head" and a ViT's patch size.
        return dict(model_name=self.model_name, img_size=self.img_size, patch_size=4, embed_dim=self.width,
                    depth=self.depth, num_heads=1, mlp_hidden=self.widest, pretrained=False, mean=self.mean,
                    std=self.std, pool_first=self.pool_first, logit_scale=self.logit_scale)  # fmt: skip


@dataclass(frozen=True)
class LMConfig(ModelConfig):
    """A small causal language model over bytes: transformers' `LlamaForCausalLM` (RMSNorm,
    SwiGLU, RoPE), with the attention implementation pinned, since the KV study reads attention
    weights (`eager`)."""

    model_name: str = "llama"
    vocab_size: int = 256  # bytes: any text, no tokenizer to train or ship
    n_layer: int = 4
    d_model: int = 256
    n_head: int = 4
    n_kv_head: int = 4
    d_ff: int = 768
    context: int = 512  # the cached prefix of a held-out context
    window: int = 32  # the continuation scored after it; training sequences are context + window long
    rope_theta: float = 10000.0
    attention: str = "eager"  # the study's (not in the key): the attention-based presses read the weights
    train_attention: str = "sdpa"  # training's: the same function, about 1.4x faster here
    repeat_rate: float = 0.0  # share of training sequences that repeat a span later (`training.lm.repeat_spans`)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def sequence(self) -> int:
        """Positions a training sequence has: every position a held-out context's window reaches."""
        return self.context + self.window

    def key(self) -> dict:
        """Every field but the study's attention; `repeat_rate` only where set (ids made before it stay)."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name != "attention" and (f.name != "repeat_rate" or self.repeat_rate)}  # fmt: skip
