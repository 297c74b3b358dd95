"""CIFAR ResNets: He et al. 2016 (section 4.2) and the ResNet-9 of Page's DAWNBench entry.

Depth 6n + 2 is He's layout: 3 stages of n basic blocks, widths w, 2w, 4w (ResNet-20 is n = 3,
w = 16: 0.27 M parameters). Depth 9 is Page's ResNet-9 ("How to train your ResNet", 2018): a
prep conv of width w, then stages of widths 2w, 4w, 8w, each a conv + BN + ReLU + 2x2 max-pool
(with `pool_first`, Page's cheaper order conv + max-pool + BN + ReLU), with one basic block after
the first and the last stage; Page also scales the logits by 0.125 (`logit_scale`). At w = 32
(half of Page's 64) it has 1.65 M parameters, 6x ResNet-20's. On this 2-core CPU (bf16,
channels-last) it learns far more per minute than ResNet-20: 89.2% after 24 epochs (50 min)
against ResNet-20's 87.7% after 45 (59 min).

Each block names its parts so that a pruning unit can find them: `conv1` → `bn1` → `act1` is the
inner path whose channels `sics.units.conv_channels` prunes, then `conv2` → `bn2`, the shortcut
(identity, or a strided 1x1 conv with BN where the shape changes) and `act2`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import Profile
from ..data.classes import CLASSES
from ..errors import ParameterError


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.act1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = (nn.Identity() if stride == 1 and cin == cout else
                         nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)))  # fmt: skip
        self.act2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act1(self.bn1(self.conv1(x)))
        return self.act2(self.bn2(self.conv2(out)) + self.shortcut(x))


def _conv_bn_relu(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


class CifarResNet(nn.Module):
    def __init__(self, depth: int = 20, width: int = 16, num_classes: int = 10, channels_last: bool = False,
                 pool_first: bool = False, logit_scale: float = 1.0):  # fmt: skip
        super().__init__()
        if depth != 9 and (depth < 8 or (depth - 2) % 6):
            raise ParameterError(f"a CIFAR ResNet has depth 6n + 2 (He) or 9 (Page), got {depth}")
        if pool_first and depth != 9:
            raise ParameterError("pool_first applies to the ResNet-9 layout (depth 9) only")
        if not logit_scale > 0:
            raise ParameterError(f"logit_scale must be positive, got {logit_scale}")
        self.channels_last = channels_last
        self.logit_scale = logit_scale
        self.stem = nn.Sequential(*_conv_bn_relu(3, width))
        if depth == 9:
            layers, cin = [], width
            for stage, cout in enumerate((2 * width, 4 * width, 8 * width)):
                conv, bn, relu = _conv_bn_relu(cin, cout)
                layers += [conv, nn.MaxPool2d(2), bn, relu] if pool_first else [conv, bn, relu, nn.MaxPool2d(2)]
                if stage != 1:
                    layers.append(BasicBlock(cout, cout))
                cin = cout
            self.blocks = nn.Sequential(*layers)
            self.pool = nn.AdaptiveMaxPool2d(1)
        else:
            n = (depth - 2) // 6
            blocks, cin = [], width
            for stage, cout in enumerate((width, 2 * width, 4 * width)):
                for i in range(n):
                    blocks.append(BasicBlock(cin, cout, stride=2 if stage and i == 0 else 1))
                    cin = cout
            self.blocks = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if channels_last:  # ~30% faster convolutions on CPU
            self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(self.pool(x), 1)) * self.logit_scale  # x * 1.0 is exact

    def basic_blocks(self) -> list[BasicBlock]:
        """The residual blocks, in forward order: their inner channels are the pruning units."""
        return [m for m in self.blocks if isinstance(m, BasicBlock)]


def build(p: Profile, weights=None) -> nn.Module:
    """The profile's CIFAR ResNet (its `ResNetConfig`) with a 10-way head."""
    return CifarResNet(p.model.depth, p.model.width, len(CLASSES), channels_last=p.channels_last, pool_first=p.model.pool_first,
                       logit_scale=p.model.logit_scale)  # fmt: skip
