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


@torch.no_grad()
def prefill_with_attention(model, prefix: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Per layer, the prefix's keys (batch, kv heads, positions, head dim) and its attention
    weights (batch, heads, positions, positions): what the published criteria read. The
    attention weights need the eager implementation, which the study pins."""
    from transformers import DynamicCache

    cache = DynamicCache()
    out = model(input_ids=prefix, past_key_values=cache, use_cache=True, output_attentions=True)
    if out.attentions is None or out.attentions[0] is None:
        raise RuntimeError("the model returned no attention weights: build it with attention='eager'")
    return [layer.keys for layer in cache.layers], list(out.attentions)


def criterion_scores(name: str, keys: torch.Tensor, attn: torch.Tensor, S: float, *, window: int = 64,
                     kernel: int = 5, n_sink: int = 4) -> torch.Tensor:  # fmt: skip
    """One layer's score per (batch, kv head, position) of a published KV criterion, computed from
    the prefill as kvpress 0.5.5 computes it (higher keeps):
    - `knorm`: minus the key norm (Devoto et al. 2024 keep low-norm keys);
    - `observed_attention`: the attention each position receives, summed over the queries that
      see it and divided by their number (H2O accumulates without that division), averaged over
      the heads sharing a kv head;
    - `tova`: the last query's attention averaged over every head of the layer, one ranking for
      all kv heads, the last position always kept;
    - `snapkv`: the last `window` queries' attention, averaged, pooled over `kernel` neighbours,
      averaged over the heads sharing a kv head, the window's own positions always kept;
    - `streaming_llm`: the first `n_sink` positions and the most recent ones.
    """
    import torch.nn.functional as F

    B, H_kv, L, _ = keys.shape
    groups = attn.shape[1] // H_kv
    if name == "knorm":
        return -torch.linalg.vector_norm(keys, dim=-1, dtype=torch.float32)
    if name == "observed_attention":
        scores = attn.sum(2) / torch.arange(L, 0, -1, dtype=attn.dtype)
        return scores.view(B, H_kv, groups, L).mean(2)
    if name == "tova":
        scores = attn[..., -1:, :-1].mean(1).repeat(1, H_kv, 1)
        return F.pad(scores, (0, 1), value=scores.max().item() + 1)
    if name == "snapkv":
        scores = attn[..., -window:, :-window].mean(-2)
        scores = F.avg_pool1d(scores, kernel_size=kernel, padding=kernel // 2, stride=1)
        scores = scores.view(B, H_kv, groups, L - window).mean(2)
        return F.pad(scores, (0, window), value=scores.max().item() + 1)
    if name == "streaming_llm":
        scores = torch.ones(B, H_kv, L)
        n_pruned = L - int(L * (1 - S))
        scores[:, :, n_sink : n_sink + n_pruned] = 0
        return scores
    raise ValueError(f"unknown KV criterion {name!r}")
