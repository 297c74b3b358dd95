"""MLP hidden channels of a ViT (the paper's unit): channel c is fc1 row c and fc2 column c of a
block's MLP, and m_c the L2 norm of both."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..errors import ParameterError
from ..models.resnet import CifarResNet
from ..selection.groups import BlockStats
from .base import (
    Unit,
    activation_taylor,
    calibration_batch,
    calibration_stats,
    narrowed,
    weight_stats,
    zeroed,
)


def mlp_blocks(model: nn.Module) -> list[nn.Module]:
    """The MLP of every transformer block: its hidden channels are the pruning units."""
    if isinstance(model, CifarResNet):
        raise ParameterError("mlp_channels prunes a ViT's MLPs; a CIFAR ResNet has none (use conv_channels)")
    return [block.mlp for block in model.blocks]


def block_stats(model: nn.Module) -> list[BlockStats]:
    """m_c and its rank for every block, from fc1 rows and fc2 columns (float64), with the weight
    statistics of the published criteria (`groups.WEIGHT_STATS`; no BN, so no "bn_scale")."""
    out = []
    for i, mlp in enumerate(mlp_blocks(model)):
        w1 = mlp.fc1.weight.detach().double().cpu()
        w2 = mlp.fc2.weight.detach().double().cpu()
        m = torch.sqrt((w1**2).sum(1) + (w2**2).sum(0)).numpy()
        out.append(BlockStats.from_magnitudes(i, m, extra=weight_stats(w1, w2)))
    return out


def taylor_importance(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                      batch_size: int = 64) -> list[np.ndarray]:  # fmt: skip
    """I_c = Σ_batches (Σ_{samples, tokens} a_c · ∂L/∂a_c)^2, a_c the post-GELU activation."""
    return activation_taylor(model, [mlp.act for mlp in mlp_blocks(model)], x, y, batch_size)


def masked(model: nn.Module, masks: list[np.ndarray]):
    """Temporarily zero the pruned hidden channels (after the activation) of every block."""
    return zeroed([mlp.act for mlp in mlp_blocks(model)], masks, -1, model)


def sliced(model: nn.Module, masks: list[np.ndarray]) -> nn.Module:
    """A copy of the model with the pruned channels physically removed from fc1 and fc2.

    A block may keep no channel at all: its MLP then adds only fc2's bias.
    """
    pruned = copy.deepcopy(model)
    for mlp, m in zip(mlp_blocks(pruned), masks, strict=True):
        if not isinstance(mlp.norm, nn.Identity):
            raise NotImplementedError("slicing an MLP with a hidden norm layer is not supported")
        keep = torch.as_tensor(np.flatnonzero(m), device=mlp.fc1.weight.device)
        mlp.fc1, mlp.fc2 = narrowed(mlp.fc1, keep, 0), narrowed(mlp.fc2, keep, 1)
    return pruned


class MlpChannels(Unit):
    name = "mlp_channels"
    description = "MLP hidden channels of every ViT block (fc1 row c, fc2 column c)"

    def stats(self, inputs) -> list[BlockStats]:
        return block_stats(inputs.model)

    def taylor(self, inputs, seed: int) -> list[np.ndarray]:
        def compute():
            x, y = calibration_batch(inputs, seed)
            return taylor_importance(inputs.model, x, y)

        return inputs.calibrated(f"taylor-s{seed}", compute)

    def calibration_stats(self, inputs, seed: int) -> dict[str, list[np.ndarray]]:
        """Activation statistics of the post-GELU hidden channels (over samples and tokens), and
        the Fisher saliency of fc1 row c, fc1 bias c and fc2 column c."""
        return calibration_stats(inputs, seed, [mlp.act for mlp in mlp_blocks(inputs.model)], -1,
                                 [[(mlp.fc1.weight, 0), (mlp.fc1.bias, 0), (mlp.fc2.weight, 1)]
                                  for mlp in mlp_blocks(inputs.model)])  # fmt: skip

    def masked(self, model, masks):
        return masked(model, masks)

    def apply(self, model, masks):
        return sliced(model, masks)
