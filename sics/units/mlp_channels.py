"""MLP hidden channels of a ViT (the paper's unit): channel c is fc1 row c and fc2 column c of a
block's MLP, and m_c the L2 norm of both."""

from __future__ import annotations

import copy
import re

import numpy as np

from ..errors import ParameterError
from ..selection.groups import BlockStats
from .base import Unit, magnitudes, saved_calibration_stats, weight_stats

_FC1 = re.compile(r"^blocks\.(\d+)\.mlp\.fc1\.weight$")


def mlp_blocks(model) -> list:
    """The MLP of every transformer block: its hidden channels are the pruning units."""
    if not hasattr(model, "blocks") or not all(hasattr(b, "mlp") for b in model.blocks):
        raise ParameterError(f"mlp_channels prunes a ViT's MLPs; a {type(model).__name__} has none "
                             "(a CIFAR ResNet: use conv_channels)")  # fmt: skip
    return [block.mlp for block in model.blocks]


def weight_block_stats(weights: dict[str, np.ndarray]) -> list[BlockStats]:
    """m_c and its rank for every block, from fc1 rows and fc2 columns (float64), with the weight
    statistics of the published criteria (`groups.WEIGHT_STATS`; no BN, so no "bn_scale"): from
    the weights by state-dict name (`blocks.<i>.mlp.fc1.weight`, timm's)."""
    blocks = sorted(int(m.group(1)) for m in map(_FC1.match, weights) if m)
    if not blocks:
        raise ParameterError("mlp_channels prunes a ViT's MLPs; this model has none (a CIFAR ResNet: use conv_channels)")
    out = []
    for i, b in enumerate(blocks):
        w1, w2 = weights[f"blocks.{b}.mlp.fc1.weight"], weights[f"blocks.{b}.mlp.fc2.weight"]
        out.append(BlockStats.from_magnitudes(i, magnitudes(w1, w2), extra=weight_stats(w1, w2)))
    return out


def block_stats(model) -> list[BlockStats]:
    """`weight_block_stats` of a model's weights."""
    return weight_block_stats({k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})


def taylor_importance(model, x, y, batch_size: int = 64) -> list[np.ndarray]:
    """I_c = Σ_batches (Σ_{samples, tokens} a_c · ∂L/∂a_c)^2, a_c the post-GELU activation."""
    from .ops import activation_taylor

    return activation_taylor(model, [mlp.act for mlp in mlp_blocks(model)], x, y, batch_size)


def masked(model, masks: list[np.ndarray]):
    """Temporarily zero the pruned hidden channels (after the activation) of every block."""
    from .ops import zeroed

    return zeroed([mlp.act for mlp in mlp_blocks(model)], masks, -1, model)


def sliced(model, masks: list[np.ndarray]):
    """A copy of the model with the pruned channels physically removed from fc1 and fc2.

    A block may keep no channel at all: its MLP then adds only fc2's bias.
    """
    import torch
    from torch import nn

    from .ops import narrowed

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
        return weight_block_stats(inputs.weights())

    def taylor(self, inputs, seed: int) -> list[np.ndarray]:
        def compute():
            from .ops import calibration_batch

            x, y = calibration_batch(inputs, seed)
            return taylor_importance(inputs.model, x, y)

        return inputs.calibrated(f"taylor-s{seed}", compute)

    def calibration_stats(self, inputs, seed: int) -> dict[str, list[np.ndarray]]:
        """Activation statistics of the post-GELU hidden channels (over samples and tokens), and
        the Fisher saliency of fc1 row c, fc1 bias c and fc2 column c."""
        def compute():
            from .ops import calibration_pass

            blocks = mlp_blocks(inputs.model)
            return calibration_pass(inputs, seed, [mlp.act for mlp in blocks], -1,
                                    [[(mlp.fc1.weight, 0), (mlp.fc1.bias, 0), (mlp.fc2.weight, 1)] for mlp in blocks])

        return saved_calibration_stats(inputs, seed, compute)

    def masked(self, model, masks):
        return masked(model, masks)

    def apply(self, model, masks):
        return sliced(model, masks)
