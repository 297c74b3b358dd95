"""The torch side of token pruning (`sics.units.tokens`): the tokens entering the block and
their importance, the forward pass of the kept tokens, and the label-free gradient importance."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ParameterError
from ..models.precision import autocast


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
    raise ParameterError(f"unknown token importance {kind!r}")  # (`Tokens` lists the valid ones)


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


def forward_state(inputs, tag: str, block: int, kind: str) -> dict:
    """Per study and token unit `tag`: the tokens entering block `block` for every test image, and
    their importance `kind`, computed in the same pass."""
    state = inputs.cache.setdefault(tag, {})
    if "x" not in state:
        model = inputs.model
        _check(model)
        b = resolve_block(model, block)
        xs, imp = [], []
        # the selection follows the importance's ranks: with fp32 decisions they are computed
        # without autocast, so near-equal importances are not ranked by bf16 rounding
        precision = "fp32" if inputs.profile.fp32_decisions else inputs.profile.eval_precision
        with torch.no_grad(), autocast(inputs.device, precision):
            for images, _ in inputs.test().batches(inputs.profile.eval_batch_size):
                x = prefix(model, images, b)
                xs.append(x)
                imp.append(importance(model.blocks[b], x, kind).cpu())
        state.update(x=torch.cat(xs), importance=torch.cat(imp).numpy(), block=b)
    return state


def taylor_sum(inputs, state: dict) -> np.ndarray:
    """s_t = Σ_d a_td ∂z/∂a_td per test image and patch token (`forward_state`'s tokens)."""
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


def evaluate(inputs, state: dict, keep: np.ndarray) -> np.ndarray:
    """Per-image correctness with each image's kept tokens (`keep`: (images, k) patch indices)
    gathered at the block."""
    keep = torch.as_tensor(keep, device=inputs.device)
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
