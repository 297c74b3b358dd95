"""Cached positions of a language model's KV cache as pruning units (the KV-cache study).

Each held-out context is prefilled once; then, at every layer and kv-head, a fraction S of its
`context` cached positions is evicted, and the continuation window runs against the kept ones,
as kvpress compresses a cache after prefill. So a group is one context at one layer and kv-head
(kvpress scores per position and kv-head), ordered context-major, then layer, then kv-head; every
group has `context` units, and keeps the same number of them.

m, the base importance, is kvpress's observed attention: the attention a position receives from
the prefill's queries, averaged over the queries that see it and over the heads sharing its
kv-head (`kv_ops.criterion_scores`). It is a published criterion (H2O's, normalised as kvpress
does), oriented so that higher keeps, and it reads what every attention-based press reads.
The gradient baseline is a label-free Taylor score on the cached keys and values,
I_p = (Σ_d k_pd ∂z/∂k_pd + v_pd ∂z/∂v_pd)², with z the log-probability of the model's own
next-byte prediction, summed over the prefix's last `window` positions (no held-out byte is read).

A result is per predicted byte (`sics.data.text.TextData`): next-byte correctness over each
context's window, clustered by context in the statistics. The torch side is `kv_ops`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError
from ..selection.groups import BlockStats
from .base import Unit

IMPORTANCES = ("observed_attention", "knorm")


def keep_index(masks: list[np.ndarray], shape: tuple[int, int, int]) -> np.ndarray:
    """(contexts, layers, kv heads, k) indices of the kept positions of every group."""
    counts = {int(m.sum()) for m in masks}
    if len(counts) != 1:
        raise ParameterError("KV selections must keep the same number of positions in every group")
    return np.stack([np.flatnonzero(m) for m in masks]).reshape(*shape, counts.pop())


@dataclass
class KvPositions(Unit):
    importance: str = "observed_attention"  # m; or "knorm" (minus the key norm: low norms keep)

    name = "kv_positions"
    description = (
        "cached positions of each held-out context, per layer and kv-head, evicted after prefill"
    )
    static = False

    def __post_init__(self):
        if self.importance not in IMPORTANCES:
            raise ParameterError(
                f"unknown KV importance {self.importance!r}; valid: {', '.join(IMPORTANCES)}"
            )

    def key(self) -> dict:
        return {"importance": self.importance}

    @property
    def tag(self) -> str:
        return f"kv-{self.importance}"

    def cluster(self, profile) -> int:
        return profile.model.window

    def shape(self, inputs) -> tuple[int, int, int]:
        m = inputs.profile.model
        return inputs.n_test() // m.window, m.n_layer, m.n_kv_head

    def group_sizes(self, inputs) -> list[int]:
        return [inputs.profile.model.context] * int(np.prod(self.shape(inputs)))

    def stats(self, inputs) -> list[BlockStats]:
        """Every group's importance (float32 as computed; saved with the calibration statistics)."""
        imp = inputs.calibrated(self.importance, lambda: [self._state(inputs)["scores"][self.importance]])[0]
        imp = imp.astype(np.float64)
        if self.importance == "knorm":  # (minus the key norm: made positive, in its order, for the κ=0 transforms)
            imp = np.exp(imp - imp.max(-1, keepdims=True))
        return BlockStats.groups(imp)

    def taylor(self, inputs, seed: int) -> list[np.ndarray]:
        """The label-free Taylor score (module docstring): the same for every seed (no sampling);
        s saved in float32 as computed, squared in float64."""
        s = inputs.calibrated(
            "taylor-sum", lambda: [_ops().taylor_sum(inputs, self._state(inputs))]
        )[0]
        return list(s.astype(np.float64) ** 2)

    def calibration_stats(self, inputs, seed: int) -> dict[str, list[np.ndarray]]:
        """The prefill scores of kvpress's criteria per group (`sics.selection.kv_criteria`): read
        from each context itself, so the same for every seed (float32 as computed, saved)."""
        return {f"kv_{name}": list(inputs.calibrated(name, lambda n=name: [self._state(inputs)["scores"][n]])[0])
                for name in ("knorm", "snapkv", "tova")}  # fmt: skip

    def _state(self, inputs) -> dict:
        return _ops().forward_state(inputs, self.tag)

    def evaluate(self, inputs, masks: list[np.ndarray]) -> np.ndarray:
        """Next-byte correctness of every predicted byte, with each group's kept positions."""
        return _ops().evaluate(inputs, self._state(inputs), keep_index(masks, self.shape(inputs)))


def _ops():
    from . import kv_ops

    return kv_ops
