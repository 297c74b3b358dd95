"""kvpress's criteria for the KV-cache unit (`sics.units.kv_positions`), as registered scorers of
kind "kv" (`scorers.published("kv")`), so they run through the one selection path. Each reads its
prefill score per group (computed as kvpress 0.5.5 computes it, `sics.units.kv_ops.criterion_scores`,
and provided by the unit as calibration statistics), higher keeps:

- `kv_knorm` (KnormPress, Devoto et al. 2024): minus the key norm;
- `kv_snapkv` (SnapKVPress): the last 64 queries' pooled attention, those 64 positions kept;
- `kv_tova` (TOVAPress): the last query's attention, averaged over all heads, the last position kept;
- `kv_streaming_llm` (StreamingLLMPress): the first 4 positions (sinks) and the most recent ones.

Observed attention (ObservedAttentionPress) is the unit's m: its selection is magnitude's, Π(S).
Our selection keeps round((1 − S)·n) positions, kvpress keeps int(n(1 − S)): for n = 512 the same
at S = 0.5 and 0.8, one more here at S = 0.6 and 0.7 (docs/protocol.md §8).
"""

from __future__ import annotations

import numpy as np

from .groups import BlockStats
from .scorers import KV_KIND, register

N_SINK = 4  # StreamingLLMPress's default


@register("kv_knorm", kappa="criterion", batched=True, criterion=KV_KIND, c1=True, needs=("kv_knorm",))
def kv_knorm(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.need("kv_knorm", "kv_knorm")


@register("kv_snapkv", kappa="criterion", batched=True, criterion=KV_KIND, c1=True, needs=("kv_snapkv",))
def kv_snapkv(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.need("kv_snapkv", "kv_snapkv")


@register("kv_tova", kappa="criterion", batched=True, criterion=KV_KIND, c1=True, needs=("kv_tova",))
def kv_tova(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    return block.need("kv_tova", "kv_tova")


@register("kv_streaming_llm", kappa="criterion", batched=True, criterion=KV_KIND, c1=False)
def kv_streaming_llm(block: BlockStats, S: float, rng: np.random.Generator) -> np.ndarray:
    """The position itself (recent ranks high), the sinks above every other position."""
    n = np.shape(block.m)[-1]
    position = np.broadcast_to(np.arange(n, dtype=np.float64), np.shape(block.m))
    return np.where(position < N_SINK, position + 2 * n, position)
