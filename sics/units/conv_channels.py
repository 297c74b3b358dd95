"""Inner channels of a CIFAR ResNet's residual blocks: channel c is output channel c of the
block's first conv with its BN, and input slice c of the second conv; m_c is the L2 norm of conv1's
filter c and conv2's input slice c."""

from __future__ import annotations

import copy
import re

import numpy as np

from ..errors import ParameterError
from ..selection.groups import BlockStats
from .base import Unit, magnitudes, saved_calibration_stats, weight_stats

_CONV1 = re.compile(r"^blocks\.(\d+)\.conv1\.weight$")


def residual_blocks(model) -> list:
    """The basic blocks of a CIFAR ResNet: their inner channels are the conv pruning units."""
    if not hasattr(model, "basic_blocks"):
        raise ParameterError(f"conv_channels prunes a CIFAR ResNet's blocks, not a {type(model).__name__}")
    return model.basic_blocks()


def _block_names(weights: dict[str, np.ndarray]) -> list[str]:
    """The state-dict prefix of every basic block (`blocks.<i>.`, in forward order)."""
    found = sorted(int(m.group(1)) for m in map(_CONV1.match, weights) if m)
    if not found:
        raise ParameterError("conv_channels prunes a CIFAR ResNet's blocks; this model has none (a ViT: use mlp_channels)")
    return [f"blocks.{i}." for i in found]


def weight_conv_magnitudes(weights: dict[str, np.ndarray]) -> list[np.ndarray]:
    """m_c = ‖[conv1 filter c, conv2 input slice c]‖₂ for every residual block (float64)."""
    return [magnitudes(weights[b + "conv1.weight"], weights[b + "conv2.weight"]) for b in _block_names(weights)]


def conv_magnitudes(model) -> list[np.ndarray]:
    """`weight_conv_magnitudes` of a model's weights."""
    return weight_conv_magnitudes({k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})


def masked_conv(model, masks: list[np.ndarray]):
    """Temporarily zero the pruned inner channels (after the block's first activation)."""
    from .ops import zeroed

    return zeroed([blk.act1 for blk in residual_blocks(model)], masks, 1, model)


def sliced_conv(model, masks: list[np.ndarray]):
    """A copy with the pruned inner channels removed: conv1 output filters, bn1, conv2 inputs.

    A block that keeps no channel keeps one zeroed channel instead (a convolution needs an
    input channel); it contributes exactly nothing, as the removed channels would.
    """
    import torch
    from torch import nn

    from .ops import narrowed

    pruned = copy.deepcopy(model)
    for blk, m in zip(residual_blocks(pruned), masks, strict=True):
        keep = np.flatnonzero(m)
        idx = torch.as_tensor(keep if len(keep) else [0], device=blk.conv1.weight.device)
        bn = blk.bn1
        new_bn = nn.BatchNorm2d(len(idx), eps=bn.eps, momentum=bn.momentum, device=bn.weight.device,
                                dtype=bn.weight.dtype)  # fmt: skip
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(new_bn, name).copy_(getattr(bn, name)[idx])
        new_bn.eval()
        blk.conv1, blk.bn1, blk.conv2 = narrowed(blk.conv1, idx, 0), new_bn, narrowed(blk.conv2, idx, 1)
        if not len(keep):
            with torch.no_grad():
                blk.conv2.weight.zero_()
    return pruned


class ConvChannels(Unit):
    name = "conv_channels"
    description = "inner channels of every residual block (conv1 filter c + BN, conv2 input slice c)"

    def stats(self, inputs) -> list[BlockStats]:
        """m_c, with the weight statistics of the published criteria (`groups.WEIGHT_STATS`):
        conv1 filter c is the input side, conv2 input slice c the output side, |γ_c| of bn1."""
        w = inputs.weights()
        return [BlockStats.from_magnitudes(i, m, extra={**weight_stats(w[b + "conv1.weight"], w[b + "conv2.weight"]),
                                                        "bn_scale": np.abs(w[b + "bn1.weight"].astype(np.float64))})
                for i, (m, b) in enumerate(zip(weight_conv_magnitudes(w), _block_names(w), strict=True))]  # fmt: skip

    def taylor(self, inputs, seed: int) -> list[np.ndarray]:
        def compute():
            from .ops import activation_taylor, calibration_batch

            x, y = calibration_batch(inputs, seed)
            return activation_taylor(inputs.model, [b.act1 for b in residual_blocks(inputs.model)], x, y, channel_dim=1)

        return inputs.calibrated(f"taylor-s{seed}", compute)

    def calibration_stats(self, inputs, seed: int) -> dict[str, list[np.ndarray]]:
        """Activation statistics after the block's first ReLU (over samples and pixels), and the
        Fisher saliency of conv1 filter c, bn1's γ_c and β_c, and conv2 input slice c."""
        def compute():
            from .ops import calibration_pass

            blocks = residual_blocks(inputs.model)
            return calibration_pass(inputs, seed, [b.act1 for b in blocks], 1,
                                    [[(b.conv1.weight, 0), (b.bn1.weight, 0), (b.bn1.bias, 0), (b.conv2.weight, 1)]
                                     for b in blocks])  # fmt: skip

        return saved_calibration_stats(inputs, seed, compute)

    def masked(self, model, masks):
        return masked_conv(model, masks)

    def apply(self, model, masks):
        return sliced_conv(model, masks)
