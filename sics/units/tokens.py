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
kept tokens. The forward passes are in `sics.units.token_ops` (torch); this module needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from ..selection.groups import BlockStats
from .base import Unit

IMPORTANCES = ("cls_attention", "norm")


def keep_index(masks: list[np.ndarray]) -> np.ndarray:
    """(images, k) indices of each image's kept patch tokens (every image keeps k of them)."""
    counts = {int(m.sum()) for m in masks}
    if len(counts) != 1:
        raise ParameterError("token selections must keep the same number of tokens in every image "
                             "(per-image allocation)")  # fmt: skip
    return np.stack([np.flatnonzero(m) for m in masks])


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

    def stats(self, inputs) -> list[BlockStats]:
        """Each image's token importances (float32 as computed; saved with the study's
        calibration statistics, so they need no forward pass once saved)."""
        imp = inputs.calibrated("importance", lambda: [self._state(inputs)["importance"]])[0]
        return BlockStats.groups(imp.astype(np.float64))

    def group_sizes(self, inputs) -> list[int]:
        p = inputs.profile
        return [p.model.tokens] * inputs.n_test()

    def taylor(self, inputs, seed: int) -> list[np.ndarray]:
        """Label-free gradient × activation per token, I_t = s_t² with s_t = Σ_d a_td ∂z/∂a_td
        (the same for every seed: no sampling). s is saved in float32 as computed; the square
        in float64."""
        return list(inputs.calibrated("taylor-sum", lambda: [_ops().taylor_sum(inputs, self._state(inputs))])[0].astype(np.float64) ** 2)

    def _state(self, inputs) -> dict:
        """The tokens entering the block for every test image, with their importance (computed
        once per study, `token_ops.forward_state`)."""
        return _ops().forward_state(inputs, self.tag, self.block, self.importance)

    def evaluate(self, inputs, masks: list[np.ndarray]) -> np.ndarray:
        """Per-image correctness with each image's kept tokens gathered at the block."""
        return _ops().evaluate(inputs, self._state(inputs), keep_index(masks))


def _ops():
    from . import token_ops

    return token_ops
