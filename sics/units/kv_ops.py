"""The torch side of the KV-cache unit: prefill each held-out context once and keep its cache,
then score a selection by running only the continuation window against the kept positions.

The prefill's own outputs do not depend on which positions are later evicted (a press compresses
each layer's cache after that layer's prefill forward, as kvpress does), so one prefill serves
every row. A row gathers the kept keys and values (keys already rotated by their own positions)
into a fresh cache and runs the window at positions context .. context + window - 1, as kvpress's
pipeline runs a question after a compressed context.
"""

from __future__ import annotations

import numpy as np
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
def prefill_with_attention(model, prefix: torch.Tensor):
    """Per layer, the prefix's keys and values (batch, kv heads, positions, head dim) and its
    attention weights (batch, heads, positions, positions): what the published criteria read. The
    attention weights need the eager implementation, which the study pins."""
    from transformers import DynamicCache

    cache = DynamicCache()
    out = model(input_ids=prefix, past_key_values=cache, use_cache=True, output_attentions=True)
    if out.attentions is None or out.attentions[0] is None:
        raise RuntimeError("the model returned no attention weights: build it with attention='eager'")
    return [c.keys for c in cache.layers], [c.values for c in cache.layers], list(out.attentions)


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
        scores = attn.sum(2) / torch.arange(L, 0, -1, dtype=attn.dtype, device=attn.device)
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
        scores = torch.ones(B, H_kv, L, device=keys.device)
        n_pruned = L - int(L * (1 - S))
        scores[:, :, n_sink : n_sink + n_pruned] = 0
        return scores
    raise ValueError(f"unknown KV criterion {name!r}")


SCORED = ("observed_attention", "knorm", "tova", "snapkv")  # what the prefill scores (streaming_llm needs none)
CHUNK = 16  # contexts a pass holds: their attention weights are 16 x heads x context² floats per layer


def _contexts(inputs) -> torch.Tensor:
    return torch.as_tensor(np.asarray(inputs.data().test_x, dtype=np.int64))


def _flat(t: torch.Tensor) -> np.ndarray:
    """(contexts, layers, kv heads, positions) -> (groups, positions), context-major."""
    return t.reshape(-1, t.shape[-1]).numpy()


def _bar(iterable, what: str):
    from ..progress import bar

    return bar(iterable, desc=f"kv {what}")


def forward_state(inputs, tag: str) -> dict:
    """Per study: every held-out context's cached keys and values per layer, from one prefill,
    and the prefill's scores of the criteria in `SCORED` per group (float32). S only enters
    StreamingLLM's score, which is not among them; the others are kvpress's with its defaults
    (`criterion_scores`), SnapKV's window of 64 positions at most a quarter of the context."""
    state = inputs.cache.setdefault(tag, {})
    if "kv" not in state:
        model, m = inputs.model, inputs.profile.model
        model.eval()
        ctx = _contexts(inputs)
        kv: list[list[tuple[torch.Tensor, torch.Tensor]]] = []
        scores: dict[str, list[torch.Tensor]] = {k: [] for k in SCORED}
        for i in _bar(range(0, len(ctx), CHUNK), "prefill"):
            keys, values, attn = prefill_with_attention(model, ctx[i : i + CHUNK, : m.context].to(inputs.device))
            kv.append([(k.cpu(), v.cpu()) for k, v in zip(keys, values, strict=True)])
            for name in SCORED:
                per_layer = [criterion_scores(name, k.float(), a.float(), 0.5, window=min(64, m.context // 4))
                             for k, a in zip(keys, attn, strict=True)]  # fmt: skip
                scores[name].append(torch.stack(per_layer, 1).float().cpu())  # (chunk, layers, kv heads, positions)
            del keys, values, attn
        state["kv"] = [(torch.cat([c[i][0] for c in kv]), torch.cat([c[i][1] for c in kv])) for i in range(m.n_layer)]
        state["scores"] = {k: _flat(torch.cat(v)) for k, v in scores.items()}
    return state


def taylor_sum(inputs, state: dict) -> np.ndarray:
    """s_p = Σ_d k_pd ∂z/∂k_pd + v_pd ∂z/∂v_pd per group and position, z the log-probability of
    the model's own prediction summed over the prefix's last `window` positions. Each layer's keys
    and values are held as they are while another's change (leaves in the projections' place), as
    after prefill: evicting a position at layer l leaves every other layer's cache as it was. The
    keys are taken before RoPE: a rotation is orthogonal, so k·∂z/∂k is the same rotated."""
    model, m = inputs.model, inputs.profile.model
    ctx = _contexts(inputs)
    grabbed: list[torch.Tensor] = []

    def keep(_module, _args, out):  # a leaf in the projection's place: its gradient is kept
        leaf = out.detach().requires_grad_(True)
        grabbed.append(leaf)
        return leaf

    hooks = [h for layer in model.model.layers for h in (layer.self_attn.k_proj.register_forward_hook(keep),
                                                          layer.self_attn.v_proj.register_forward_hook(keep))]  # fmt: skip
    trainable = [p for p in model.parameters() if p.requires_grad]
    for p in trainable:  # only the cache's gradients are wanted
        p.requires_grad_(False)
    out = []
    try:
        for i in _bar(range(0, len(ctx), CHUNK), "taylor"):
            grabbed.clear()
            prefix = ctx[i : i + CHUNK, : m.context].to(inputs.device)
            logp = model(input_ids=prefix).logits[:, -m.window :].float().log_softmax(-1)
            logp.max(-1).values.sum().backward()
            per_layer = []
            for k, v in zip(grabbed[0::2], grabbed[1::2], strict=True):
                s = (k * k.grad + v * v.grad).view(*k.shape[:2], m.n_kv_head, -1).sum(-1)  # (chunk, positions, kv heads)
                per_layer.append(s.transpose(1, 2).detach().cpu())
            out.append(torch.stack(per_layer, 1))
    finally:
        for h in hooks:
            h.remove()
        for p in trainable:
            p.requires_grad_(True)
    return _flat(torch.cat(out).float())


@torch.no_grad()
def evaluate(inputs, state: dict, keep: np.ndarray) -> np.ndarray:
    """Per predicted byte (context-major), whether the window predicts it with the kept positions
    (`keep`: (contexts, layers, kv heads, k) position indices)."""
    model, m = inputs.model, inputs.profile.model
    model.eval()
    ctx = _contexts(inputs)
    keep_t = torch.as_tensor(keep)
    out = []
    for i in range(0, len(ctx), CHUNK * 4):
        sl = slice(i, i + CHUNK * 4)
        kv = [(k[sl].to(inputs.device), v[sl].to(inputs.device)) for k, v in state["kv"]]
        cache = gather_cache(kv, [keep_t[sl, layer].to(inputs.device) for layer in range(m.n_layer)])
        rows = ctx[sl].to(inputs.device)
        logits = window_logits(model, cache, rows[:, m.context : m.context + m.window], m.context)
        out.append((logits.argmax(-1) == rows[:, m.context + 1 :]).reshape(-1).cpu())
    return torch.cat(out).numpy()
