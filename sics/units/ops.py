"""The torch side of the unit kinds: the calibration batch, first-order Taylor importance of any
activation, activation statistics and Fisher saliency, zeroing units with a hook, and slicing a
layer along one axis. Imported where a unit runs the model; `sics.units.base` holds what needs
no model."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn
from torch.nn.utils import skip_init

from ..data.registry import batches_of
from .base import UnitInputs


def calibration_batch(inputs: UnitInputs, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The seeded calibration subset of the training images (`n_calib` of them), on the device."""
    data = inputs.data()
    g = torch.Generator().manual_seed(10_000 + seed)
    idx = torch.randperm(len(data.train_y), generator=g)[: inputs.profile.n_calib]
    calib = batches_of(data.train_x[idx], data.train_y[idx], inputs.profile, inputs.device)
    return calib.prepare(calib.x), calib.y


def activation_taylor(model: nn.Module, acts: list[nn.Module], x: torch.Tensor, y: torch.Tensor,
                      batch_size: int = 64, channel_dim: int = -1) -> list[np.ndarray]:  # fmt: skip
    """I_c = Σ_batches (Σ_{samples, positions} a_c · ∂L/∂a_c)², with a the output of each module
    in `acts` and its channels along `channel_dim`: the first-order Taylor channel importance."""
    seen: dict[int, torch.Tensor] = {}

    def hook(i):
        def f(_module, _inp, out):
            out.retain_grad()
            seen[i] = out

        return f

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(acts)]
    was_training = model.training
    model.eval()
    total: list[torch.Tensor | None] = [None] * len(acts)
    try:
        for s in range(0, len(y), batch_size):
            model.zero_grad(set_to_none=True)
            xb, yb = x[s : s + batch_size], y[s : s + batch_size]
            loss = torch.nn.functional.cross_entropy(model(xb), yb)
            loss.backward()
            for i, a in seen.items():
                dims = tuple(d for d in range(a.dim()) if d != channel_dim % a.dim())
                per_channel = ((a.detach() * a.grad).sum(dim=dims).double()) ** 2
                total[i] = per_channel if total[i] is None else total[i] + per_channel
    finally:
        for h in handles:
            h.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return [t.cpu().numpy() for t in total]


def calibration_pass(inputs: UnitInputs, seed: int, acts: list[nn.Module], channel_dim: int,
                     groups: list[list[tuple[torch.Tensor, int]]]) -> dict[str, list[np.ndarray]]:  # fmt: skip
    """`activation_stats` and `fisher_saliency` on the calibration subset of `seed` (the
    computation behind `base.saved_calibration_stats`)."""
    x, y = calibration_batch(inputs, seed)
    return {**activation_stats(inputs.model, acts, x, channel_dim=channel_dim),
            "fisher": fisher_saliency(inputs.model, groups, x, y)}


@torch.no_grad()
def activation_stats(model: nn.Module, acts: list[nn.Module], x: torch.Tensor, batch_size: int = 64,
                     channel_dim: int = -1) -> dict[str, list[np.ndarray]]:  # fmt: skip
    """Per channel of each module's output, over the calibration samples and every position
    (token or pixel): mean |a|, ‖a‖₂ and the (population) variance of a. float64 sums, fp32 model."""
    sums = [dict(n=0, abs=0.0, sq=0.0, lin=0.0) for _ in acts]

    def hook(i):
        def f(_module, _inp, out):
            a = out.detach().double().movedim(channel_dim % out.dim(), -1).reshape(-1, out.shape[channel_dim])
            s = sums[i]
            s["n"] += a.shape[0]
            s["abs"] = s["abs"] + a.abs().sum(0)
            s["sq"] = s["sq"] + (a * a).sum(0)
            s["lin"] = s["lin"] + a.sum(0)

        return f

    handles = [m.register_forward_hook(hook(i)) for i, m in enumerate(acts)]
    was_training = model.training
    model.eval()
    try:
        for s in range(0, len(x), batch_size):
            model(x[s : s + batch_size])
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    out: dict[str, list[np.ndarray]] = {"act_abs_mean": [], "act_l2": [], "act_var": []}
    for s in sums:
        mean = s["lin"] / s["n"]
        out["act_abs_mean"].append((s["abs"] / s["n"]).cpu().numpy())
        out["act_l2"].append(torch.sqrt(s["sq"]).cpu().numpy())
        out["act_var"].append((s["sq"] / s["n"] - mean * mean).clamp_min(0).cpu().numpy())
    return out


def fisher_saliency(model: nn.Module, groups: list[list[tuple[torch.Tensor, int]]], x: torch.Tensor,
                    y: torch.Tensor) -> list[np.ndarray]:  # fmt: skip
    """OBD's diagonal second-order saliency with the empirical Fisher for the Hessian, per channel:
    Σ_w w² · E_n[g_w,n²], over each channel's weights, with g_n the gradient of sample n's own loss
    (one backward pass per sample, so E[g²] is a mean of squares, not a square of means).

    `groups`: per group, its (parameter, channel axis) pairs; a channel's weights are the slices
    of those parameters at its index along the axis."""
    params = [p for grp in groups for p, _ in grp]
    acc = [torch.zeros_like(p, dtype=torch.float64) for p in params]
    was_training = model.training
    model.eval()
    try:
        for i in range(len(y)):
            model.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
            for a, p in zip(acc, params, strict=True):
                a += p.grad.double() ** 2
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    out, k = [], 0
    for grp in groups:
        total = 0.0
        for p, axis in grp:
            term = (p.detach().double() ** 2) * (acc[k] / len(y))
            total = total + term.movedim(axis, 0).reshape(p.shape[axis], -1).sum(1)
            k += 1
        out.append(total.cpu().numpy())
    return out


@contextmanager
def zeroed(modules: list[nn.Module], masks: list[np.ndarray], channel_dim: int = -1,
           model: nn.Module | None = None) -> Iterator[nn.Module | None]:  # fmt: skip
    """Temporarily multiply the output of each module by its keep-mask along `channel_dim`
    (a forward hook): the pruned units' activations are zero, as if they were removed."""
    handles = []
    for module, m in zip(modules, masks, strict=True):
        keep = torch.as_tensor(m, dtype=torch.float32)

        def hook(_m, _i, out, k=keep):
            shape = [1] * out.dim()
            shape[channel_dim] = -1
            return out * k.to(out.device, out.dtype).view(shape)

        handles.append(module.register_forward_hook(hook))
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def narrowed(layer: nn.Linear | nn.Conv2d, index: torch.Tensor, axis: int) -> nn.Module:
    """A copy of a Linear or Conv2d layer keeping only the output (axis 0) or input (axis 1)
    units in `index`; the bias follows the outputs. No initialisation: the weights are copied."""
    w = layer.weight.index_select(axis, index)
    like = dict(device=w.device, dtype=w.dtype, bias=layer.bias is not None)
    with warnings.catch_warnings():  # a layer of no units: torch warns that init is a no-op
        warnings.filterwarnings("ignore", "Initializing zero-element tensors", UserWarning)
        if isinstance(layer, nn.Linear):
            new = skip_init(nn.Linear, w.shape[1], w.shape[0], **like)
        else:
            new = skip_init(nn.Conv2d, w.shape[1], w.shape[0], layer.kernel_size, layer.stride, layer.padding, **like)
    with torch.no_grad():
        new.weight.copy_(w)
        if layer.bias is not None:
            new.bias.copy_(layer.bias[index] if axis == 0 else layer.bias)
    return new
