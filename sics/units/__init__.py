"""Units of pruning: what a study ranks, keeps and removes.

A unit kind says
- what its units are and how they are grouped: `stats` gives one `BlockStats` per group, holding
  the units' magnitude-type importance m (the κ=0 scorers are its increasing transforms, and the
  non-monotone features are read along its rank);
- the importance its gradient baseline reads (`taylor`);
- how a keep-mask per group is applied: by masking (`masked`) and by slicing the units out where
  that is possible (`apply`, what the sweeps evaluate; the two give the same logits).

Scorers, selection (`sics.selection.select`), sweeps, statistics, tables and claims read only
`BlockStats` and keep-masks, so they run unchanged on every unit kind. The kinds here:

- `mlp_channels` (the paper's unit, the default): hidden channel c of a ViT block's MLP, i.e.
  fc1 row c and fc2 column c; m_c is the L2 norm of both.
- `conv_channels`: inner channel c of a residual block of a CIFAR ResNet, i.e. output channel c
  of the block's first conv with its BN, and input slice c of the second conv; m_c is the L2 norm
  of conv1's filter c and conv2's input slice c.
- `tokens` (`sics.units.tokens`): the patch tokens of each image at one ViT block; a group is an image,
  so the selection differs per image and is made from the test images themselves.
- `kv_positions` (`sics.units.kv_positions`): the cached positions of a language model's
  held-out contexts, a group per context, layer and kv-head, evicted after prefill.
- `experts` (`sics.units.moe`): a ViT's MLP experts made by MoEfication, a group per test
  image, block and token, routed by a fitted router.

A kind receives `UnitInputs` (the model, the profile, the data on demand, the saved calibration
statistics), never the study. A new kind subclasses `Unit` (`sics.units.base`) and is registered
by name in `UNITS` here.
Each kind owns its surgery, in its own file; the slicing they share is `ops.narrowed`. What needs no
model (statistics from the weights, group sizes, keys) imports no torch; what runs one does.
"""

from __future__ import annotations

from ..errors import ParameterError
from .base import Unit, UnitInputs
from .conv_channels import ConvChannels
from .kv_positions import KvPositions
from .mlp_channels import MlpChannels
from .moe import Experts
from .tokens import Tokens

UNITS: dict[str, type[Unit]] = {"mlp_channels": MlpChannels, "conv_channels": ConvChannels, "tokens": Tokens,
                                "kv_positions": KvPositions, "experts": Experts}  # fmt: skip

def get_unit(name: str | Unit, **params) -> Unit:
    """The unit kind `name` with its settings, e.g. `get_unit("tokens", block=3)`."""
    if isinstance(name, Unit):
        return name
    if name not in UNITS:
        raise ParameterError(f"unknown unit {name!r}; valid: {', '.join(UNITS)}")
    try:
        return UNITS[name](**params)
    except TypeError as e:
        raise ParameterError(f"unit {name!r}: {e}") from None


__all__ = ["UNITS", "ConvChannels", "Experts", "KvPositions", "MlpChannels", "Tokens", "Unit", "UnitInputs", "get_unit"]
