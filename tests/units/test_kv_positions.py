"""The KV-cache unit (in the KV environment: `make kv-env`; skipped elsewhere): its groups and
importance, its evaluation against an independent masked-attention forward pass, and its
label-free Taylor score against a finite difference."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("transformers") and pytest.importorskip("torch")

from sics.config import resolve_profile  # noqa: E402
from sics.data.text import TextData, held_out_contexts  # noqa: E402
from sics.models import build_model  # noqa: E402
from sics.selection.select import score_and_select  # noqa: E402
from sics.units import UnitInputs, get_unit, kv_ops  # noqa: E402
from sics.units.kv_positions import keep_index  # noqa: E402

N = 5  # held-out contexts


@pytest.fixture(scope="module")
def setup():
    p = resolve_profile("ci_lm")
    m = p.model
    torch.manual_seed(0)
    model = build_model(p).eval()
    stream = np.random.default_rng(0).integers(32, 127, size=5000).astype(np.uint8)
    data = TextData(
        stream,
        held_out_contexts(stream, m.context, m.window, N),
        m.context,
        m.window,
        "random bytes",
        "r",
    )
    saved: dict = {}

    def calibrated(name, compute):
        return saved.setdefault(name, compute())

    inputs = UnitInputs(p, model, torch.device("cpu"), data=lambda: data, n_test=lambda: len(data.test_y),
                        calibrated=calibrated)  # fmt: skip
    return p, model, data, inputs


def masked_reference(
    model, x: torch.Tensor, kept: torch.Tensor, context: int, window: int
) -> torch.Tensor:
    """The window's logits from one forward pass over prefix and window, the window's queries
    masked off the dropped prefix positions (`kept`: (batch, k), the same at every layer and head)."""
    L = context + window
    allowed = torch.tril(torch.ones(L, L, dtype=torch.bool)).repeat(len(x), 1, 1)
    dropped = torch.ones(len(x), context, dtype=torch.bool).scatter_(1, kept, False)
    allowed[:, context:, :context] &= ~dropped[:, None, :]
    mask = torch.zeros(len(x), 1, L, L).masked_fill_(
        ~allowed[:, None], torch.finfo(torch.float32).min
    )
    with torch.no_grad():
        return model(input_ids=x[:, :L], attention_mask=mask).logits[:, context:].float()


def test_groups_are_context_layer_kv_head_and_m_is_kvpress_observed_attention(setup):
    p, model, data, inputs = setup
    m, unit = p.model, get_unit("kv_positions")
    stats = unit.stats(inputs)
    assert (
        unit.shape(inputs) == (N, m.n_layer, m.n_kv_head)
        and len(stats) == N * m.n_layer * m.n_kv_head
    )
    assert {len(b.m) for b in stats} == {m.context} and unit.cluster(p) == m.window
    x = torch.as_tensor(data.test_x[:, : m.context].astype(np.int64))
    keys, _, attn = kv_ops.prefill_with_attention(model, x)
    layer, head, ctx = 1, 1, 3
    want = kv_ops.criterion_scores("observed_attention", keys[layer], attn[layer], 0.5)[
        ctx, head
    ].numpy()
    got = stats[(ctx * m.n_layer + layer) * m.n_kv_head + head].m
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_evaluation_equals_masking_the_evicted_positions_out_of_one_forward_pass(setup):
    p, model, data, inputs = setup
    m, unit = p.model, get_unit("kv_positions")
    rng = np.random.default_rng(1)
    kept = np.stack([np.sort(rng.choice(m.context, 20, replace=False)) for _ in range(N)])
    masks = []
    for c in range(N):
        mask = np.zeros(m.context, dtype=bool)
        mask[kept[c]] = True
        masks += [mask] * (m.n_layer * m.n_kv_head)
    x = torch.as_tensor(data.test_x.astype(np.int64))
    ref = masked_reference(model, x, torch.as_tensor(kept), m.context, m.window)
    want = (ref.argmax(-1) == x[:, m.context + 1 :]).reshape(-1).numpy()
    np.testing.assert_array_equal(unit.evaluate(inputs, masks), want)
    # the logits themselves, not only their argmax (a random model predicts little right)
    kv = kv_ops.prefill(model, x[:, : m.context])
    index = torch.as_tensor(keep_index(masks, unit.shape(inputs)))
    cache = kv_ops.gather_cache(kv, [index[:, layer] for layer in range(m.n_layer)])
    got = kv_ops.window_logits(model, cache, x[:, m.context : m.context + m.window], m.context)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    # every position kept is the dense model; none kept leaves the window to itself
    every = [np.ones(m.context, dtype=bool)] * len(masks)
    with torch.no_grad():
        dense = model(input_ids=x[:, :-1]).logits[:, -m.window :].argmax(-1)
    np.testing.assert_array_equal(
        unit.evaluate(inputs, every), (dense == x[:, m.context + 1 :]).reshape(-1).numpy()
    )
    assert unit.evaluate(inputs, [~mk for mk in every]).shape == (N * m.window,)


def test_a_selection_must_keep_one_count_per_group(setup):
    p, _, _, inputs = setup
    unit = get_unit("kv_positions")
    stats = unit.stats(inputs)
    masks = list(score_and_select(stats, "magnitude", 0.6, 0, None, "block")[1])
    assert {int(mk.sum()) for mk in masks} == {round(0.4 * p.model.context)}
    masks[0] = masks[0].copy()
    masks[0][np.flatnonzero(~masks[0])[0]] = True
    with pytest.raises(Exception, match="same number of positions"):
        unit.evaluate(inputs, masks)


def test_taylor_score_is_the_derivative_of_z_along_scaling_one_positions_key_and_value(setup):
    """s_p = Σ k ∂z/∂k + v ∂z/∂v is dz/dε when position p's key and value are scaled by 1 + ε."""
    p, model, data, inputs = setup
    m, unit = p.model, get_unit("kv_positions")
    s = inputs.calibrated("taylor-sum", lambda: [kv_ops.taylor_sum(inputs, {})])[0]
    assert s.shape == (N * m.n_layer * m.n_kv_head, m.context)
    ctx, layer, head = 2, 1, 0
    row = s[(ctx * m.n_layer + layer) * m.n_kv_head + head]
    pos = int(
        np.abs(row).argmax()
    )  # the clearest signal: eager attention's softmax is fp32 even in fp64
    x = torch.as_tensor(data.test_x[ctx : ctx + 1, : m.context].astype(np.int64))
    hd = m.d_model // m.n_head

    def z(eps: float) -> float:
        def scale(_mod, _args, out):
            out = out.clone()
            out[0, pos, head * hd : (head + 1) * hd] *= 1 + eps
            return out

        attn = model.model.layers[layer].self_attn
        hooks = [attn.k_proj.register_forward_hook(scale), attn.v_proj.register_forward_hook(scale)]
        try:
            with torch.no_grad():
                logp = model.double()(input_ids=x).logits[:, -m.window :].log_softmax(-1)
        finally:
            for h in hooks:
                h.remove()
            model.float()
        return float(logp.max(-1).values.sum())

    eps = 1e-3
    fd = (z(eps) - z(-eps)) / (2 * eps)
    assert abs(row[pos] - fd) <= 0.01 * abs(fd) and np.ptp(row) > 0, (row[pos], fd)
    assert np.allclose(np.stack(unit.taylor(inputs, 0)), s.astype(np.float64) ** 2)
