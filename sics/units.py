"""Units of pruning: what a study ranks, keeps and removes.

A unit kind says
- what its units are and how they are grouped: `stats` gives one `BlockStats` per group, holding
  the units' magnitude-type importance m (the κ=0 scorers are its increasing transforms, and the
  non-monotone features are read along its rank);
- the importance its gradient baseline reads (`taylor`);
- how a keep-mask per group is applied: by masking (`masked`) and by slicing the units out where
  that is possible (`apply`, what the sweeps evaluate; the two give the same logits).

Scorers, selection (`prune.select`), sweeps, statistics, tables and claims read only
`BlockStats` and keep-masks, so they run unchanged on every unit kind. The kinds here:

- `mlp_channels` (the paper's unit, the default): hidden channel c of a ViT block's MLP, i.e.
  fc1 row c and fc2 column c; m_c is the L2 norm of both.
- `conv_channels`: inner channel c of a residual block of a CIFAR ResNet, i.e. output channel c
  of the block's first conv with its BN, and input slice c of the second conv; m_c is the L2 norm
  of conv1's filter c and conv2's input slice c.
- `tokens` (`sics.tokens`): the patch tokens of each image at one ViT block; a group is an image,
  so the selection differs per image and is made from the test images themselves.

A new kind subclasses `Unit` and is registered by name in `sics.unitkinds.UNITS`.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn
from torch.nn.utils import skip_init

from .data import DeviceBatches
from .models import mlp_blocks, residual_blocks
from .prune import masked as masked_mlp
from .prune import sliced as sliced_mlp
from .prune import zeroed
from .selection.groups import BlockStats

# --- statistics from a model ---------------------------------------------------------------


def block_stats(model: nn.Module) -> list[BlockStats]:
    """m_c and its rank for every block, from fc1 rows and fc2 columns (float64)."""
    out = []
    for i, mlp in enumerate(mlp_blocks(model)):
        w1 = mlp.fc1.weight.detach().double().cpu()
        w2 = mlp.fc2.weight.detach().double().cpu()
        m = torch.sqrt((w1**2).sum(1) + (w2**2).sum(0)).numpy()
        out.append(BlockStats.from_magnitudes(i, m))
    return out


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


def taylor_importance(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      batch_size: int = 64) -> list[np.ndarray]:  # fmt: skip
    """I_c = Σ_batches (Σ_{samples, tokens} a_c · ∂L/∂a_c)^2, a_c the post-GELU activation."""
    return activation_taylor(model, [mlp.act for mlp in mlp_blocks(model)], x, y, batch_size)


class Unit:
    """A kind of pruning unit (see the module docstring). Subclasses fill in the methods."""

    name: str = ""
    description: str = ""
    static: bool = True  # True: the selection depends on the weights only, not on the images

    def key(self) -> dict:
        """What besides the name tells this unit's selections apart (part of every row key)."""
        return {}

    @property
    def tag(self) -> str:
        """Short label of the unit and its settings, for cache folders."""
        return self.name

    def stats(self, study) -> list[BlockStats]:
        raise NotImplementedError

    def group_sizes(self, study) -> list[int]:
        return [b.H for b in study.stats]

    def taylor(self, study, seed: int) -> list[np.ndarray]:
        raise NotImplementedError

    def masked(self, model: nn.Module, masks: list[np.ndarray]):
        """Context manager: the model with the pruned units zeroed (a hook), restored after."""
        raise NotImplementedError

    def apply(self, model: nn.Module, masks: list[np.ndarray]) -> nn.Module:
        """A pruned copy of the model (units sliced out where possible), for evaluation."""
        raise NotImplementedError

    def evaluate(self, study, masks: list[np.ndarray]) -> np.ndarray:
        """Per-image correctness under `masks`, for a unit whose selection differs per image
        (`static` False: `Study.correct` calls this instead of `apply`)."""
        raise NotImplementedError


def calibration_batch(study, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The seeded calibration subset of the training images (`n_calib` of them), on the device."""
    g = torch.Generator().manual_seed(10_000 + seed)
    idx = torch.randperm(len(study.data.train_y), generator=g)[: study.profile.n_calib]
    calib = DeviceBatches(study.data.train_x[idx], study.data.train_y[idx], device=study.device,
                          mean=study.profile.mean, std=study.profile.std,
                          img_size=study.profile.img_size)  # fmt: skip
    return calib.prepare(calib.x), calib.y


class MlpChannels(Unit):
    name = "mlp_channels"
    description = "MLP hidden channels of every ViT block (fc1 row c, fc2 column c)"

    def stats(self, study) -> list[BlockStats]:
        return block_stats(study.model)

    def taylor(self, study, seed: int) -> list[np.ndarray]:
        def compute():
            x, y = calibration_batch(study, seed)
            return taylor_importance(study.model, x, y)

        return study.calibrated(f"taylor-s{seed}", compute)

    def masked(self, model, masks):
        return masked_mlp(model, masks)

    def apply(self, model, masks):
        return sliced_mlp(model, masks)


# --- conv channels of residual blocks -----------------------------------------------------


def conv_magnitudes(model: nn.Module) -> list[np.ndarray]:
    """m_c = ‖[conv1 filter c, conv2 input slice c]‖₂ for every residual block (float64)."""
    out = []
    for blk in residual_blocks(model):
        w1 = blk.conv1.weight.detach().double().cpu()
        w2 = blk.conv2.weight.detach().double().cpu()
        out.append(torch.sqrt((w1**2).sum((1, 2, 3)) + (w2**2).sum((0, 2, 3))).numpy())
    return out


def masked_conv(model: nn.Module, masks: list[np.ndarray]):
    """Temporarily zero the pruned inner channels (after the block's first activation)."""
    return zeroed([blk.act1 for blk in residual_blocks(model)], masks, 1, model)


def sliced_conv(model: nn.Module, masks: list[np.ndarray]) -> nn.Module:
    """A copy with the pruned inner channels removed: conv1 output filters, bn1, conv2 inputs.

    A block that keeps no channel keeps one zeroed channel instead (a convolution needs an
    input channel); it contributes exactly nothing, as the removed channels would.
    """
    pruned = copy.deepcopy(model)
    for blk, m in zip(residual_blocks(pruned), masks, strict=True):
        keep = np.flatnonzero(m)
        empty = len(keep) == 0
        idx = torch.as_tensor(keep if not empty else [0], device=blk.conv1.weight.device)
        c1, bn, c2 = blk.conv1, blk.bn1, blk.conv2
        like = dict(device=c1.weight.device, dtype=c1.weight.dtype)
        new1 = skip_init(nn.Conv2d, c1.in_channels, len(idx), c1.kernel_size, c1.stride, c1.padding,
                         bias=c1.bias is not None, **like)  # fmt: skip
        new_bn = nn.BatchNorm2d(len(idx), eps=bn.eps, momentum=bn.momentum, **like)
        new2 = skip_init(nn.Conv2d, len(idx), c2.out_channels, c2.kernel_size, c2.stride, c2.padding,
                         bias=c2.bias is not None, **like)  # fmt: skip
        with torch.no_grad():
            new1.weight.copy_(c1.weight[idx])
            if c1.bias is not None:
                new1.bias.copy_(c1.bias[idx])
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(new_bn, name).copy_(getattr(bn, name)[idx])
            new2.weight.copy_(c2.weight[:, idx])
            if empty:
                new2.weight.zero_()
            if c2.bias is not None:
                new2.bias.copy_(c2.bias)
        new_bn.eval()
        blk.conv1, blk.bn1, blk.conv2 = new1, new_bn, new2
    return pruned


class ConvChannels(Unit):
    name = "conv_channels"
    description = "inner channels of every residual block (conv1 filter c + BN, conv2 input slice c)"

    def stats(self, study) -> list[BlockStats]:
        return [BlockStats.from_magnitudes(i, m) for i, m in enumerate(conv_magnitudes(study.model))]

    def taylor(self, study, seed: int) -> list[np.ndarray]:
        def compute():
            x, y = calibration_batch(study, seed)
            return activation_taylor(study.model, [b.act1 for b in residual_blocks(study.model)], x, y, channel_dim=1)

        return study.calibrated(f"taylor-s{seed}", compute)

    def masked(self, model, masks):
        return masked_conv(model, masks)

    def apply(self, model, masks):
        return sliced_conv(model, masks)
