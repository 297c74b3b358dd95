"""A ViT's MLP experts as pruning units (MoE routing, made from the dense model by MoEfication).

Each block's H hidden channels are split into E balanced experts of H/E channels that fire
together (`experts.balanced_partition`), and a linear router per block is fitted to the oracle's
expert scores on the tokens of `n_fit` training images (`experts.fit_router`): both are made once
per model, from the training split, and saved with the study's calibration statistics (committed
beside each run's weights, so the experts are the same wherever the study is rebuilt).

A group is one token's E experts at one block, for every test image, block and token (CLS
included), ordered image-major, then block, then token; S is the fraction of the token's experts
not run (k = round((1 − S)·E) run). m is the router's gate weight (the softmax of its scores
over the token's experts); the κ=0 scorers keep the router's top k (MoE's own routing), the non-monotone classes are read along each token's rank of the
router's scores. Routing is decided on the dense model's block inputs (each block's router sees
the tokens the dense model gives it), so a row's selection is fixed before it is evaluated, as
every unit's is. The gradient baseline is label-free: I_e = (Σ_{c∈e} h_c ∂z/∂h_c)², h the
token's hidden activations, z the logit of the predicted class. The oracle (`moe_oracle`,
`sics.selection.moe_criteria`) ranks the experts by the norm of their actual contribution to
the token's MLP output.

Running k experts is the dense MLP with the other experts' channels removed, per token: the
channel unit's surgery (`expert_ops.moe_mlp`). The torch side is `expert_ops`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from ..selection.groups import BlockStats
from .base import Unit


@dataclass
class Experts(Unit):
    n_experts: int = 64
    n_fit: int = 256  # training images whose tokens make the experts and fit the routers

    name = "experts"
    description = "MLP experts (MoEfication) of each token at each ViT block"
    static = False

    def __post_init__(self):
        if self.n_experts < 2 or self.n_fit < 1:
            raise ParameterError(f"experts need n_experts >= 2 and n_fit >= 1, not {self.n_experts}, {self.n_fit}")

    def key(self) -> dict:
        return {"n_experts": self.n_experts, "n_fit": self.n_fit}

    @property
    def tag(self) -> str:
        return f"experts-E{self.n_experts}" + ("" if self.n_fit == 256 else f"-fit{self.n_fit}")

    def shape(self, inputs) -> tuple[int, int, int]:
        m = inputs.profile.model
        return inputs.n_test(), m.depth, m.tokens + 1

    def group_sizes(self, inputs) -> list[int]:
        return [self.n_experts] * int(np.prod(self.shape(inputs)))

    def moefied(self, inputs) -> tuple[np.ndarray, np.ndarray]:
        """(labels (blocks, H): each channel's expert, routers (blocks, D + 1, E)): made once from
        the training images and saved with the calibration statistics."""
        made: dict = {}

        def fit(part: str):
            if not made:
                made.update(zip(("labels", "routers"), _ops().moefy(inputs, self.n_experts, self.n_fit), strict=True))
            return [made[part]]

        return (inputs.calibrated("moe-labels", lambda: fit("labels"))[0],
                inputs.calibrated("moe-routers", lambda: fit("routers"))[0])  # fmt: skip

    def _state(self, inputs) -> dict:
        return _ops().forward_state(inputs, self.tag, *self.moefied(inputs))

    def stats(self, inputs) -> list[BlockStats]:
        """Every token's gate weights, the softmax of its router scores (recomputed from the
        weights and the routers: not saved): positive, as the κ=0 transforms need, in the order
        of the scores."""
        return BlockStats.groups(gates(self._state(inputs)["router"]))

    def taylor(self, inputs, seed: int) -> list[np.ndarray]:
        """The label-free Taylor score of every token's experts (the same for every seed)."""
        state = self._state(inputs)
        if "taylor" not in state:
            state["taylor"] = _ops().taylor_sum(inputs, state).astype(np.float64) ** 2
        return list(state["taylor"])

    def calibration_stats(self, inputs, seed: int) -> dict[str, list[np.ndarray]]:
        """The oracle's expert scores per token (the same for every seed)."""
        return {"oracle_norm": list(self._state(inputs)["oracle"])}

    def routing(self, inputs, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(recall (blocks,): the mean share of the oracle's top k experts that the router's top k
        holds, over the test tokens; load (blocks, E): the share of tokens that run each expert):
        saved with the calibration statistics, so a study rebuilt from its bundle reports them."""

        def compute() -> list[np.ndarray]:
            state, shape = self._state(inputs), self.shape(inputs)
            router = state["router"].reshape(*shape, self.n_experts).swapaxes(0, 1).reshape(shape[1], -1, self.n_experts)
            oracle = state["oracle"].reshape(*shape, self.n_experts).swapaxes(0, 1).reshape(shape[1], -1, self.n_experts)
            top_r = np.argsort(-router, axis=-1, kind="stable")[..., :k]
            top_o = np.argsort(-oracle, axis=-1, kind="stable")[..., :k]
            hit = (top_r[..., :, None] == top_o[..., None, :]).any(-1).mean(-1)  # (blocks, tokens)
            load = np.stack([np.bincount(t.ravel(), minlength=self.n_experts) / len(t) for t in top_r])
            return [hit.mean(-1), load]

        recall, load = inputs.calibrated(f"moe-routing-k{k}", compute)
        return recall, load

    def evaluate(self, inputs, masks: list[np.ndarray]) -> np.ndarray:
        """Per-image correctness with each token running only its kept experts at every block."""
        return _ops().evaluate(inputs, self._state(inputs), np.stack(masks).reshape(*self.shape(inputs), self.n_experts))


def gates(scores: np.ndarray) -> np.ndarray:
    """The softmax over each row's experts (float64): a MoE's gate weights."""
    z = np.exp(scores.astype(np.float64) - scores.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def _ops():
    from . import expert_ops

    return expert_ops
