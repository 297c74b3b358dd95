"""The torch side of the KV-cache unit: prefill each held-out context once and keep its cache,
then score a selection by running only the continuation window against the kept positions.

The prefill's own outputs do not depend on which positions are later evicted (a press compresses
each layer's cache after that layer's prefill forward, as kvpress does), so one prefill serves
every row. A row gathers the kept keys and values (keys already rotated by their own positions)
into a fresh cache and runs the window at positions context .. context + window - 1, as kvpress's
pipeline runs a question after a compressed context.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def prefill(model, prefix: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per layer, the (keys, values) of `prefix` (batch, positions): (batch, kv heads, positions, head dim)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    model(input_ids=prefix, past_key_values=cache, use_cache=True)
    return [(layer.keys, layer.values) for layer in cache.layers]


def gather_cache(kv: list[tuple[torch.Tensor, torch.Tensor]], kept: list[torch.Tensor]):
    """A cache holding, per layer, the positions `kept[layer]` (batch, kv heads, n kept) of `kv`."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for layer, ((k, v), idx) in enumerate(zip(kv, kept, strict=True)):
        index = idx.unsqueeze(-1).expand(-1, -1, -1, k.shape[-1])
        cache.update(k.gather(2, index), v.gather(2, index), layer)
    return cache


@torch.no_grad()
def window_logits(model, cache, window: torch.Tensor, start: int) -> torch.Tensor:
    """The logits of the window tokens (batch, window) at positions start .., given `cache`."""
    positions = torch.arange(start, start + window.shape[1], device=window.device).unsqueeze(0)
    return model(input_ids=window, past_key_values=cache, position_ids=positions).logits.float()
