"""kvpress on the KV study's LM (in the KV environment: `make kv-env`; skipped elsewhere): the
five presses the study compares against run on our `LlamaForCausalLM` as kvpress runs them (its
context manager over a prefill), the positions each keeps are read back from the cache, and
kvpress keeps int(n(1 - S)) positions where our selection path rounds half up."""

from __future__ import annotations

import numpy as np
import pytest
import torch

kvpress = pytest.importorskip("kvpress")

from transformers import DynamicCache  # noqa: E402

from sics.config import resolve_profile  # noqa: E402
from sics.models import build_model  # noqa: E402
from sics.selection.select import keep_count  # noqa: E402

S4 = (0.5, 0.6, 0.7, 0.8)


def kept_positions(model, x: torch.Tensor, press) -> list[torch.Tensor]:
    """Per layer, the (batch, kv head, kept) positions `press` keeps in a prefill of `x`: its
    cache holds gathered keys (in score order), matched here to the uncompressed cache's."""
    with torch.no_grad():
        full = DynamicCache()
        model(input_ids=x, past_key_values=full)
        cache = DynamicCache()
        with press(model):
            model(input_ids=x, past_key_values=cache)
    out = []
    for layer in range(len(model.model.layers)):
        k, kept = full.layers[layer].keys, cache.layers[layer].keys
        same = (kept[:, :, :, None, :] == k[:, :, None, :, :]).all(-1)  # (B, H, kept, L)
        assert (same.sum(-1) == 1).all()  # every kept key is one position's, bit for bit
        out.append(same.float().argmax(-1).sort(-1).values)
    return out


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    model = build_model(resolve_profile("ci_lm")).eval()
    x = torch.from_numpy(np.random.default_rng(0).integers(32, 127, size=(3, 64))).long()
    return model, x


@pytest.mark.parametrize("S", S4)
def test_the_five_presses_run_on_our_lm_and_keep_kvpress_s_count(lm, S):
    model, x = lm
    presses = [kvpress.KnormPress(S), kvpress.SnapKVPress(S, window_size=16), kvpress.TOVAPress(S),
               kvpress.ObservedAttentionPress(S), kvpress.StreamingLLMPress(S, n_sink=4)]  # fmt: skip
    n = x.shape[1]
    for press in presses:
        for positions in kept_positions(model, x, press):
            assert positions.shape[-1] == kvpress.utils.compute_n_kept(n, S) == int(n * (1 - S))
    # where the counts part: ours rounds (1 - S) n half up, kvpress truncates (and float error
    # makes 64 x 0.2 = 12.799...)
    assert [keep_count(S_, n) for S_ in S4] == [32, 26, 19, 13]
    assert [int(n * (1 - S_)) for S_ in S4] == [32, 25, 19, 12]


def test_knorm_keeps_the_lowest_key_norms_and_streaming_the_sinks_and_the_recent(lm):
    model, x = lm
    with torch.no_grad():
        full = DynamicCache()
        model(input_ids=x, past_key_values=full)
    norms = full.layers[1].keys.norm(dim=-1)  # (B, H, L)
    knorm = kept_positions(model, x, kvpress.KnormPress(0.5))[1]
    lowest = norms.argsort(-1)[..., :32].sort(-1).values
    assert torch.equal(knorm, lowest)  # the key norm, oriented so that low norms stay (Devoto et al.)
    stream = kept_positions(model, x, kvpress.StreamingLLMPress(0.5, n_sink=4))[0]
    assert stream[0, 0].tolist() == [0, 1, 2, 3, *range(36, 64)]


def test_a_row_runs_only_the_window_against_the_kept_positions_as_kvpress_does(lm):
    """Our gathered cache gives the window the logits kvpress's compressed cache gives it, and
    with every position kept, the logits of one uncut forward pass."""
    from sics.units.kv_ops import gather_cache, prefill, window_logits

    model, x = lm
    prefix, window = x[:, :48], x[:, 48:]
    kv = prefill(model, prefix)
    press = kvpress.KnormPress(0.5)
    with torch.no_grad():
        pressed = DynamicCache()
        with press(model):
            model(input_ids=prefix, past_key_values=pressed)
        theirs = window_logits(model, pressed, window, 48)
    kept = kept_positions(model, prefix, press)
    ours = window_logits(model, gather_cache(kv, kept), window, 48)
    assert torch.allclose(ours, theirs, atol=1e-5)
    everything = [torch.arange(48).expand(3, 2, 48) for _ in kv]
    with torch.no_grad():
        whole = model(input_ids=x).logits[:, 48:].float()
    assert torch.allclose(window_logits(model, gather_cache(kv, everything), window, 48), whole, atol=1e-5)
    assert not torch.allclose(ours, whole, atol=1e-3)  # evicting half the cache changes the window


PRESSES = {  # our criterion -> kvpress's press, with the settings both use here
    "knorm": lambda S: kvpress.KnormPress(S),
    "observed_attention": lambda S: kvpress.ObservedAttentionPress(S),
    "tova": lambda S: kvpress.TOVAPress(S),
    "snapkv": lambda S: kvpress.SnapKVPress(S, window_size=16, kernel_size=5),
    "streaming_llm": lambda S: kvpress.StreamingLLMPress(S, n_sink=4),
}


@pytest.mark.parametrize("S", S4)
@pytest.mark.parametrize("name", sorted(PRESSES))
def test_our_criteria_select_what_kvpress_selects(lm, name, S):
    """Scores computed from one prefill, then the top int(n(1 - S)) per (context, layer, kv head):
    the same positions kvpress keeps, in every layer, context and head."""
    from sics.units.kv_ops import criterion_scores, prefill_with_attention

    model, x = lm
    keys, _, attns = prefill_with_attention(model, x)
    theirs = kept_positions(model, x, PRESSES[name](S))
    n_kept = int(x.shape[1] * (1 - S))
    for layer, (k, a) in enumerate(zip(keys, attns, strict=True)):
        scores = criterion_scores(name, k, a, S, window=16)
        ours = scores.topk(n_kept, dim=-1).indices.sort(-1).values
        assert torch.equal(ours, theirs[layer]), (name, S, layer)


def test_kvpress_observed_attention_divides_by_the_queries_that_see_a_position():
    """H2O accumulates the attention a position receives; kvpress divides that sum by the number
    of queries that can see the position. With queries that attend half to themselves and half
    evenly to what they see, H2O keeps the early half, kvpress mostly the late positions."""
    from sics.units.kv_ops import criterion_scores

    L = 32
    causal = torch.tril(torch.ones(L, L))
    attn = (0.5 * torch.eye(L) + 0.5 * causal / causal.sum(1, keepdim=True))[None, None]  # rows sum to 1
    keys = torch.zeros(1, 1, L, 4)
    theirs = kvpress.ObservedAttentionPress(0.5).score(None, None, keys, None, attn, None)
    ours = criterion_scores("observed_attention", keys, attn, 0.5)
    assert torch.allclose(ours, theirs)
    h2o = attn.sum(2)  # the accumulated attention of the H2O paper
    assert h2o.topk(16).indices.sort().values.tolist() == [[list(range(16))]]  # the early half
    assert ours.topk(16).indices.sort().values.tolist() == [[[0, 1, 2, *range(19, 32)]]]  # mostly late


SCORER_OF = {"knorm": "kv_knorm", "observed_attention": "magnitude", "tova": "kv_tova", "snapkv": "kv_snapkv",
             "streaming_llm": "kv_streaming_llm"}  # fmt: skip


@pytest.mark.parametrize("S", [0.5, 0.7])  # where int(64(1 - S)) and our half-up count agree
@pytest.mark.parametrize("name", sorted(PRESSES))
def test_the_units_selection_path_keeps_what_kvpress_keeps(lm, name, S):
    """The registered scorer (magnitude for observed attention, the unit's m) through the study's
    one selection path, on the unit's statistics: kvpress's positions in every group."""
    from sics.data.text import TextData
    from sics.selection.select import score_and_select
    from sics.units import UnitInputs, get_unit
    from sics.units.kv_positions import keep_index

    model, x = lm
    p = resolve_profile("ci_lm")
    m = p.model
    tail = torch.randint(32, 127, (len(x), m.window + 1), generator=torch.Generator().manual_seed(0))
    data = TextData(np.zeros(10, np.uint8), torch.cat([x, tail], 1).numpy().astype(np.uint8), m.context, m.window,
                    "random bytes", "r")  # fmt: skip
    saved: dict = {}
    inputs = UnitInputs(p, model, torch.device("cpu"), data=lambda: data, n_test=lambda: len(data.test_y),
                        calibrated=lambda name_, compute: saved.setdefault(name_, compute()))  # fmt: skip
    unit = get_unit("kv_positions")
    stats = unit.stats(inputs)
    scorer = SCORER_OF[name]
    from sics.selection.groups import with_extra
    from sics.selection.scorers import get_scorer

    if get_scorer(scorer).needs:
        stats = with_extra(stats, unit.calibration_stats(inputs, 0))
    ours = keep_index(score_and_select(stats, scorer, S, 0, None, "block")[1], unit.shape(inputs))
    theirs = kept_positions(model, x, PRESSES[name](S))
    for layer in range(m.n_layer):
        assert np.array_equal(ours[:, layer], theirs[layer].numpy()), (name, S, layer)
