"""The torch side of experts (MoEfication): an MLP that runs, per token, only the channels of
the experts chosen for it. Running k experts is the dense MLP with the other experts' channels
removed, so this is the channel unit's surgery, applied per token."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def expert_mask(labels: np.ndarray, chosen: torch.Tensor) -> torch.Tensor:
    """(tokens..., H) channel masks from the experts `chosen` per token (tokens..., E) and each
    channel's expert `labels` (H,)."""
    return chosen[..., torch.from_numpy(np.asarray(labels)).long()]


def moe_mlp(mlp: nn.Module, x: torch.Tensor, labels: np.ndarray, chosen: torch.Tensor) -> torch.Tensor:
    """A timm `Mlp` (fc1, act, drop1, norm, fc2, drop2) on `x` (..., D), each token running only
    the channels of its chosen experts (`chosen`: x's leading shape, E)."""
    h = mlp.norm(mlp.drop1(mlp.act(mlp.fc1(x))))
    h = h * expert_mask(labels, chosen).to(h.dtype)
    return mlp.drop2(mlp.fc2(h))


def expert_output_norms(mlp: nn.Module, x: torch.Tensor, labels: np.ndarray) -> torch.Tensor:
    """(tokens..., E): the norm of each expert's contribution to each token's MLP output, fc2's
    columns of the expert's channels times their activations (the oracle of MoEfication ranks the
    experts by it; fc2's bias belongs to no expert)."""
    h = mlp.norm(mlp.drop1(mlp.act(mlp.fc1(x))))
    labels = np.asarray(labels)
    E = int(labels.max()) + 1
    if np.all(np.bincount(labels, minlength=E) == len(labels) // E):  # balanced: one grouped matmul
        order = torch.from_numpy(np.argsort(labels, kind="stable")).long().to(h.device)
        grouped = h[..., order].unflatten(-1, (E, -1))  # (..., E, H/E)
        weight = mlp.fc2.weight[:, order].unflatten(-1, (E, -1)).to(h.dtype)  # (D, E, H/E)
        return torch.einsum("...ec,dec->...ed", grouped, weight).norm(dim=-1)
    onehot = torch.nn.functional.one_hot(torch.from_numpy(labels).long(), E).to(h.device, h.dtype)  # (H, E)
    return torch.einsum("...h,he,dh->...ed", h, onehot, mlp.fc2.weight.to(h.dtype)).norm(dim=-1)


def top_experts(scores: torch.Tensor, k: int) -> torch.Tensor:
    """(tokens..., E) bool: each token's k experts of highest score."""
    chosen = torch.zeros_like(scores, dtype=torch.bool)
    return chosen.scatter(-1, scores.topk(k, dim=-1).indices, True)


def _mlp_inputs_and_acts(model: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per block, the MLP's input tokens (images, tokens, D) and hidden activations (..., H) on `x`."""
    ins, acts, hooks = [], [], []
    for blk in model.blocks:
        hooks.append(blk.mlp.register_forward_hook(lambda m, i, o: ins.append(i[0].detach())))
        hooks.append(blk.mlp.act.register_forward_hook(lambda m, i, o: acts.append(o.detach())))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return ins, acts


def moefy(inputs, n_experts: int, n_fit: int) -> tuple[np.ndarray, np.ndarray]:
    """MoEfication of every block from the tokens of `n_fit` training images (drawn with seed 0):
    (labels (blocks, H) int64, routers (blocks, D + 1, E) float64). In fp32."""
    from ..data.batches import DeviceBatches
    from .experts import balanced_partition, coactivation_features, fit_router

    data, model = inputs.data(), inputs.model
    idx = torch.randperm(len(data.train_y), generator=torch.Generator().manual_seed(0))[:n_fit]
    train = DeviceBatches.of(data.train_x[idx], data.train_y[idx], inputs.profile, inputs.device)
    model.eval()
    ins, acts = _mlp_inputs_and_acts(model, train.prepare(train.x))
    labels, routers = [], []
    for b, (inp, act) in enumerate(zip(ins, acts, strict=True)):
        inp, act = inp.flatten(0, 1).float(), act.flatten(0, 1).float()
        labels.append(balanced_partition(coactivation_features(act.cpu().numpy()), n_experts, seed=b))
        with torch.no_grad():
            oracle = expert_output_norms(model.blocks[b].mlp, inp, labels[-1]).cpu().numpy()
        routers.append(fit_router(inp.cpu().numpy(), oracle))
    return np.stack(labels).astype(np.int64), np.stack(routers)


def forward_state(inputs, tag: str, labels: np.ndarray, routers: np.ndarray) -> dict:
    """Per study: every test token's router scores and oracle scores at every block, (groups, E)
    float32, image-major, then block, then token; computed in fp32 (the decisions' precision)."""
    state = inputs.cache.setdefault(tag, {})
    if "router" not in state:
        model = inputs.model.eval()
        router, oracle = [], []
        for images, _ in inputs.test().batches(inputs.profile.eval_batch_size):
            ins, _ = _mlp_inputs_and_acts(model, images.float())
            r = [x.float() @ torch.from_numpy(routers[b][:-1]).float().to(x.device)
                 + torch.from_numpy(routers[b][-1]).float().to(x.device) for b, x in enumerate(ins)]  # fmt: skip
            with torch.no_grad():
                o = [expert_output_norms(blk.mlp, x.float(), labels[b]) for b, (blk, x) in enumerate(zip(model.blocks, ins, strict=True))]
            router.append(torch.stack(r, 1).cpu())  # (images, blocks, tokens, E)
            oracle.append(torch.stack(o, 1).cpu())
        E = routers.shape[-1]
        state.update(router=torch.cat(router).reshape(-1, E).numpy(), oracle=torch.cat(oracle).reshape(-1, E).numpy(),
                     labels=labels)  # fmt: skip
    return state


def taylor_sum(inputs, state: dict) -> np.ndarray:
    """s_e = Σ_{c∈e} h_c ∂z/∂h_c per test token, block and expert (groups, E), z the logit of the
    predicted class (no label read), in fp32."""
    model, labels = inputs.model.eval(), torch.from_numpy(state["labels"]).long()
    E = int(labels.max()) + 1
    grabbed: list[torch.Tensor] = []

    def keep(_module, _args, out):  # kept with its gradient: ∂z/∂h through every later block
        out.retain_grad()
        grabbed.append(out)

    hooks = [blk.mlp.act.register_forward_hook(keep) for blk in model.blocks]
    out = []
    try:
        for images, _ in inputs.test().batches(inputs.profile.eval_batch_size):
            grabbed.clear()
            with torch.enable_grad():  # (the input requires grad, so every activation does, frozen weights or not)
                logits = model(images.float().requires_grad_(True))
                logits.gather(1, logits.argmax(1, keepdim=True)).sum().backward()
            per_block = [torch.zeros(*h.shape[:-1], E, device=h.device).index_add_(-1, labels[b].to(h.device), (h * h.grad).detach())
                         for b, h in enumerate(grabbed)]  # fmt: skip
            out.append(torch.stack(per_block, 1).cpu())
    finally:
        for h in hooks:
            h.remove()
        model.zero_grad(set_to_none=True)
    return torch.cat(out).reshape(-1, E).numpy()


def evaluate(inputs, state: dict, keep: np.ndarray) -> np.ndarray:
    """Per-image correctness with each token running only its kept experts at every block (`keep`:
    (images, blocks, tokens, E) bool), in the profile's evaluation precision."""
    from ..models.precision import autocast

    model, labels = inputs.model.eval(), state["labels"]
    keep_t = torch.as_tensor(keep)
    out, start = [], 0
    saved = [blk.mlp.forward for blk in model.blocks]
    try:
        with torch.no_grad(), autocast(inputs.device, inputs.profile.eval_precision):
            for images, y in inputs.test().batches(inputs.profile.eval_batch_size):
                chosen = keep_t[start : start + len(y)].to(images.device)
                for b, blk in enumerate(model.blocks):
                    blk.mlp.forward = lambda x, mlp=blk.mlp, b=b, c=chosen: moe_mlp(mlp, x, labels[b], c[:, b])
                out.append(model(images).argmax(1) == y)
                start += len(y)
    finally:
        for blk, fwd in zip(model.blocks, saved, strict=True):
            blk.mlp.forward = fwd
    return torch.cat(out).cpu().numpy()
