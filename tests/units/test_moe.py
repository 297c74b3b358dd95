"""The experts unit (MoEfication of a ViT's MLPs): its groups and the router's scores, its
evaluation against an independent masking of each token's hidden channels, the oracle and the
router's top k selecting what they say, and a label-free gradient baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sics.selection.scorers import MOE_KIND, published
from sics.study.study import prepare
from sics.study.sweep import run_sweep
from sics.units.expert_ops import expert_output_norms

E = 8  # ci: H = 128, so 8 experts of 16 channels


@pytest.fixture(scope="module")
def moe_study(tiny_tree, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SICS_CACHE", str(tmp_path_factory.mktemp("moe-cache")))
        mp.setenv("SICS_FIGURES", str(tmp_path_factory.mktemp("moe-figures")))
        study = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2, unit="experts",
                        unit_params={"n_experts": E, "n_fit": 16})  # fmt: skip
        rows = run_sweep(study, ["magnitude", "logistic_smooth", "gradient", "random", *published(MOE_KIND)],
                         [0.5, 0.75], n_seeds=2)  # fmt: skip
    return study, rows


def block_inputs(model, x: torch.Tensor) -> list[torch.Tensor]:
    ins = []
    hooks = [blk.mlp.register_forward_hook(lambda m, i, o: ins.append(i[0])) for blk in model.blocks]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    return ins


def test_a_group_is_one_tokens_experts_at_one_block_and_m_is_the_routers_gate(moe_study):
    study, rows = moe_study
    m = study.profile.model
    stats = study.selection.stats
    assert study.name == "ci-experts" and len(stats) == study.n_test * m.depth * (m.tokens + 1)
    assert {b.H for b in stats} == {E}
    labels, routers = study.unit.moefied(study.selection.inputs)
    assert labels.shape == (m.depth, m.mlp_hidden) and all(np.bincount(r).tolist() == [m.mlp_hidden // E] * E for r in labels)
    x, _ = next(iter(study.test.batches(4)))
    ins = block_inputs(study.model, x.float())
    image, block, token = 2, 1, 5
    scores = ins[block][image, token].double().numpy() @ routers[block][:-1] + routers[block][-1]
    got = stats[(image * m.depth + block) * (m.tokens + 1) + token].m
    np.testing.assert_allclose(got, np.exp(scores) / np.exp(scores).sum(), rtol=1e-4, atol=1e-7)  # the gates
    assert (got > 0).all() and np.array_equal(np.argsort(got), np.argsort(scores))
    assert set(rows["unit"]) == {"experts-E8-fit16"} and (rows["kept"] > 0).all()


def test_evaluation_equals_zeroing_each_tokens_unselected_channels(moe_study):
    """An independent path: the dense model with a hook that zeroes, per token, the hidden
    channels of the experts it does not run."""
    study, _ = moe_study
    m = study.profile.model
    _, masks = study.masks("logistic_smooth", 0.75, seed=1)
    keep = torch.as_tensor(np.stack(masks).reshape(study.n_test, m.depth, m.tokens + 1, E))
    labels = torch.as_tensor(study.unit.moefied(study.selection.inputs)[0])
    got = study.evaluate(masks)
    want, start = [], 0
    for x, y in study.test.batches(256):
        chosen = keep[start : start + len(y)]
        hooks = [blk.mlp.act.register_forward_hook(lambda mod, i, o, b=b, c=chosen: o * c[:, b][..., labels[b]].to(o.dtype))
                 for b, blk in enumerate(study.model.blocks)]  # fmt: skip
        with torch.no_grad():
            want.append((study.model(x).argmax(1) == y).numpy())
        for h in hooks:
            h.remove()
        start += len(y)
    np.testing.assert_array_equal(got, np.concatenate(want))
    every = [np.ones(E, dtype=bool)] * len(masks)
    np.testing.assert_array_equal(study.evaluate(every), study.dense_correct())


def test_the_router_top_k_and_the_oracle_keep_what_they_say(moe_study):
    study, _ = moe_study
    m = study.profile.model
    labels, _ = study.unit.moefied(study.selection.inputs)
    x, _ = next(iter(study.test.batches(3)))
    ins = block_inputs(study.model, x.float())
    k = round(0.5 * E)
    _, router = study.masks("magnitude", 0.5)
    _, oracle = study.masks("moe_oracle", 0.5)
    for image, block, token in [(0, 0, 0), (1, 2, 7), (2, 3, 16)]:
        g = (image * m.depth + block) * (m.tokens + 1) + token
        scores = study.selection.stats[g].m
        assert set(np.flatnonzero(router[g])) == set(np.argsort(-scores)[:k])
        with torch.no_grad():
            norms = expert_output_norms(study.model.blocks[block].mlp, ins[block][image, token].float(), labels[block])
        assert set(np.flatnonzero(oracle[g])) == set(torch.argsort(-norms)[:k].tolist())


def test_the_gradient_baseline_reads_no_label(moe_study, monkeypatch):
    study, _ = moe_study
    first = np.stack(study.unit.taylor(study.selection.inputs, 0))
    study.selection.inputs.cache[study.unit.tag].pop("taylor")
    monkeypatch.setattr(study.test, "y", torch.full_like(study.test.y, -1))
    again = np.stack(study.unit.taylor(study.selection.inputs, 1))
    assert np.array_equal(first, again) and first.shape == (len(study.selection.stats), E) and first.max() > 0


def test_the_gradient_baseline_is_the_derivative_through_every_later_block(moe_study):
    """s_e = Σ_{c∈e} h_c ∂z/∂h_c is dz/dε when expert e's activations of one token at block 0 are
    scaled by 1 + ε, the blocks after it responding (a central difference; in fp32, since the
    classifier computes in fp32 whatever the model's dtype)."""
    from sics.units import expert_ops

    study, _ = moe_study
    m, inputs = study.profile.model, study.selection.inputs
    state = inputs.cache[study.unit.tag]
    s = expert_ops.taylor_sum(inputs, state)
    labels = torch.as_tensor(state["labels"])
    x, _ = next(iter(study.test.batches(2)))
    block = 0
    first = np.abs(s.reshape(-1, m.depth, m.tokens + 1, E)[:2, block])  # the two images of `x`
    image, token, e = (int(i) for i in np.unravel_index(first.argmax(), first.shape))  # the clearest signal
    row = s[(image * m.depth + block) * (m.tokens + 1) + token]
    model = study.model

    def z(eps: float) -> float:
        def scale(_mod, _args, out):
            out = out.clone()
            out[image, token, labels[block] == e] *= 1 + eps
            return out

        hook = model.blocks[block].mlp.act.register_forward_hook(scale)
        try:
            with torch.no_grad():
                logits = model(x.float()).double()
        finally:
            hook.remove()
        return float(logits[image].max())

    eps = 1e-2
    fd = (z(eps) - z(-eps)) / (2 * eps)
    assert abs(row[e] - fd) <= 0.02 * abs(fd), (row[e], fd)
