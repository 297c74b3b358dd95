"""Vision tokens as pruning units: per image, at one ViT block, keep round((1-S)·T) patch tokens.

At block b (default: the middle one, depth // 2) every image keeps k = round((1 - S)·T) of its T
patch tokens and the CLS token; blocks b, b+1, ... see only those. The tokens are ranked per
image by a magnitude-type importance computed from the tokens entering block b:
- `cls_attention` (default): the CLS token's attention to each patch token in block b, averaged
  over heads (the EViT/ATS importance);
- `norm`: the L2 norm of the token.
So a group is one image and its T tokens, and the κ=0 scorers (increasing transforms of the
importance) keep the same tokens; the non-monotone classes are read along each image's own token
rank, exactly as for channels. Baselines: random tokens, and a label-free gradient × activation
importance, I_t = (Σ_d a_td ∂z/∂a_td)² with z the logit of the predicted class (no test label
is used). The selection differs per image, so it is made from the test images themselves, and
evaluation gathers each image's kept tokens (`gathered`), which gives the logits of masking the
dropped tokens out of every later attention (`masked`), faster.

The tokens entering block b are computed once per study (`prefix`, in the evaluation precision,
or in fp32 with the profile's `fp32_decisions`), so an evaluation runs only blocks b.. on the
kept tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import ParameterError
from ..models.precision import autocast
from ..selection.groups import BlockStats
from .base import Unit

IMPORTANCES = ("cls_attention", "norm")


def _check(model: nn.Module) -> None:
    if not hasattr(model, "patch_embed") or getattr(model, "num_prefix_tokens", 1) != 1:
        raise ParameterError("token pruning needs a timm VisionTransformer with one CLS token and no register tokens")
    if getattr(model, "global_pool", "token") != "token":
        raise ParameterError("token pruning reads the CLS token: the model must pool by 'token'")


def resolve_block(model: nn.Module, block: int) -> int:
    depth = len(model.blocks)
    b = depth // 2 if block < 0 else block
    if not 0 <= b < depth:
        raise ParameterError(f"token pruning block {block} is outside 0..{depth - 1}")
    return b


def prefix(model: nn.Module, x: torch.Tensor, block: int) -> torch.Tensor:
    """The tokens entering block `block` (CLS first), as timm's forward_features computes them."""
    x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
    for blk in model.blocks[:block]:
        x = blk(x)
    return x


def suffix(model: nn.Module, x: torch.Tensor, block: int, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Logits from the tokens entering block `block` (optionally with a key mask for attention)."""
    for blk in model.blocks[block:]:
        x = blk(x) if attn_mask is None else blk(x, attn_mask=attn_mask)
    return model.forward_head(model.norm(x))


def cls_attention(blk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, T): the CLS token's attention to each patch token in block `blk`, mean over heads."""
    attn = blk.attn
    B, N, _ = x.shape
    qkv = attn.qkv(blk.norm1(x)).reshape(B, N, 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
    q, k = attn.q_norm(qkv[0]), attn.k_norm(qkv[1])
    scores = (q[:, :, :1] * attn.scale) @ k.transpose(-2, -1)  # (B, heads, 1, N)
    return scores.float().softmax(-1).mean(1)[:, 0, 1:]


def importance(blk: nn.Module, x: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "cls_attention":
        return cls_attention(blk, x)
    if kind == "norm":
        return x[:, 1:].float().norm(dim=-1)
    raise ParameterError(f"unknown token importance {kind!r}; valid: {', '.join(IMPORTANCES)}")


def keep_index(masks: list[np.ndarray]) -> np.ndarray:
    """(images, k) indices of each image's kept patch tokens (every image keeps k of them)."""
    counts = {int(m.sum()) for m in masks}
    if len(counts) != 1:
        raise ParameterError("token selections must keep the same number of tokens in every image "
                             "(per-image allocation)")  # fmt: skip
    return np.stack([np.flatnonzero(m) for m in masks])


def gather(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """The CLS token and the kept patch tokens (`keep`: (B, k) patch indices) of every image."""
    idx = torch.cat([torch.zeros_like(keep[:, :1]), keep + 1], dim=1)
    return x.gather(1, idx.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


@torch.no_grad()
def gathered(model: nn.Module, images: torch.Tensor, keep: torch.Tensor, block: int) -> torch.Tensor:
    """Logits with only the kept tokens (and CLS) passed on to block `block` and after."""
    return suffix(model, gather(prefix(model, images, block), keep), block)


@torch.no_grad()
def masked(model: nn.Module, images: torch.Tensor, keep: torch.Tensor, block: int) -> torch.Tensor:
    """Logits with every token kept but the dropped ones masked out of attention from block `block`
    on: nothing attends to them, so CLS and the kept tokens compute what `gathered` computes."""
    x = prefix(model, images, block)
    allowed = torch.zeros(x.shape[:2], dtype=torch.bool, device=x.device)
    allowed[:, 0] = True
    allowed.scatter_(1, keep + 1, True)
    return suffix(model, x, block, attn_mask=allowed[:, None, None, :])


@dataclass
class Tokens(Unit):
    block: int = -1  # -1: the middle block, depth // 2
    importance: str = "cls_attention"  # or "norm"

    name = "tokens"
    description = "patch tokens of each image at one ViT block (CLS always kept)"
    static = False

    def __post_init__(self):
        if self.importance not in IMPORTANCES:
            raise ParameterError(f"unknown token importance {self.importance!r}; valid: {', '.join(IMPORTANCES)}")

    def key(self) -> dict:
        return {"block": self.block, "importance": self.importance}

    @property
    def tag(self) -> str:
        return f"tokens-b{self.block}-{self.importance}"

    def _state(self, inputs) -> dict:
        """Per study: the tokens entering the block for every test image (and their importance,
        computed in the same pass)."""
        state = inputs.cache.setdefault(self.tag, {})
        if "x" not in state:
            model = inputs.model
            _check(model)
            b = resolve_block(model, self.block)
            xs, imp = [], []
            # the selection follows the importance's ranks: with fp32 decisions they are computed
            # without autocast, so near-equal importances are not ranked by bf16 rounding
            precision = "fp32" if inputs.profile.fp32_decisions else inputs.profile.eval_precision
            with torch.no_grad(), autocast(inputs.device, precision):
                for images, _ in inputs.test().batches(inputs.profile.eval_batch_size):
                    x = prefix(model, images, b)
                    xs.append(x)
                    imp.append(importance(model.blocks[b], x, self.importance).cpu())
            state.update(x=torch.cat(xs), importance=torch.cat(imp).numpy(), block=b)
        return state

    def stats(self, inputs) -> list[BlockStats]:
        """Each image's token importances (float32 as computed; saved with the study's
        calibration statistics, so they need no forward pass once saved)."""
        imp = inputs.calibrated("importance", lambda: [self._state(inputs)["importance"]])[0]
        return BlockStats.groups(imp.astype(np.float64))

    def group_sizes(self, inputs) -> list[int]:
        p = inputs.profile
        return [(p.img_size // p.patch_size) ** 2] * inputs.n_test()

    def taylor(self, inputs, seed: int) -> list[np.ndarray]:
        """Label-free gradient × activation per token, I_t = s_t² with s_t = Σ_d a_td ∂z/∂a_td
        (the same for every seed: no sampling). s is saved in float32 as computed; the square
        in float64."""
        return list(inputs.calibrated("taylor-sum", lambda: [self._taylor_sum(inputs)])[0].astype(np.float64) ** 2)

    def _taylor_sum(self, inputs) -> np.ndarray:
        state = self._state(inputs)
        model, b = inputs.model, state["block"]
        out = []
        was_training = model.training
        model.eval()
        bs = inputs.profile.eval_batch_size
        for s in range(0, len(state["x"]), bs):
            x = state["x"][s : s + bs].detach().float().requires_grad_(True)
            logits = suffix(model, x, b)
            logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()
            out.append((x * x.grad).sum(-1)[:, 1:].detach().cpu())
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        return torch.cat(out).numpy()

    def evaluate(self, inputs, masks: list[np.ndarray]) -> np.ndarray:
        """Per-image correctness with each image's kept tokens gathered at the block."""
        state = self._state(inputs)
        keep = torch.as_tensor(keep_index(masks), device=inputs.device)
        y = inputs.test().y
        bs = inputs.profile.eval_batch_size
        out = []
        model = inputs.model
        model.eval()
        with torch.no_grad(), autocast(inputs.device, inputs.profile.eval_precision):
            for s in range(0, len(y), bs):
                logits = suffix(model, gather(state["x"][s : s + bs], keep[s : s + bs]), state["block"])
                out.append(logits.argmax(1) == y[s : s + bs])
        return torch.cat(out).cpu().numpy()
