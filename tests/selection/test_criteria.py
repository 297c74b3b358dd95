"""The published criteria: our scores against Torch-Pruning's reference importances on the same
groups, LAMP as magnitude per block (and not globally), the matched control, the adaptive selector."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from sics.config import resolve_profile
from sics.models import build_model
from sics.selection.criteria import ADAPTIVE_BOUNDARIES, ADAPTIVE_CLASSES, applicable
from sics.selection.groups import BlockStats
from sics.selection.scorers import criteria, score_blocks
from sics.selection.select import jaccard, score_and_select, select
from sics.units import get_unit
from sics.units.base import UnitInputs
from sics.units.ops import fisher_saliency

tp = pytest.importorskip("torch_pruning")
CPU = torch.device("cpu")


def model_and_stats(name: str):
    torch.manual_seed(0)
    model = build_model(resolve_profile(name)).eval()
    for m in model.modules():  # a trained BN's scales differ by channel; fresh ones are all 1
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, -1.0, 1.5)
    unit = get_unit(resolve_profile(name).unit)
    inputs = UnitInputs(model=model, profile=resolve_profile(name), device=CPU, data=None, test=None,
                        n_test=None, calibrated=lambda key, compute: compute())  # fmt: skip
    return model, unit.stats(inputs)


def groups(model, name: str) -> list:
    """Torch-Pruning's pruning group of every block's channels (fc1 out / conv1 out, and what follows)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 32, 32))
    if name == "ci":
        firsts, fn = [b.mlp.fc1 for b in model.blocks], tp.prune_linear_out_channels
    else:
        firsts, fn = [b.conv1 for b in model.basic_blocks()], tp.prune_conv_out_channels
    return [graph.get_pruning_group(layer, fn, idxs=list(range(layer.out_channels if name != "ci" else layer.out_features)))
            for layer in firsts]  # fmt: skip


def ranks_alike(a, b) -> bool:
    return spearmanr(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)).statistic > 0.9999


@pytest.mark.parametrize("name", ["ci", "ci_resnet"])
def test_magnitude_l1_and_lamp_rank_as_torch_pruning_does(name):
    model, stats = model_and_stats(name)
    ours = {n: score_blocks(stats, n, 0.5) for n in ("magnitude", "l1_magnitude", "lamp")}
    # conv groups: Torch-Pruning's group norm also sums the BN's |γ|^p; ours is the two convs'
    targets = [torch.nn.Linear] if name == "ci" else [torch.nn.Conv2d]
    ref = {"magnitude": tp.importance.MagnitudeImportance(p=2, target_types=targets),
           "l1_magnitude": tp.importance.MagnitudeImportance(p=1, target_types=targets),
           "lamp": tp.importance.LAMPImportance(p=2)}  # fmt: skip
    ref["lamp"].target_types = targets  # (its constructor does not take them)
    for group, i in zip(groups(model, name), range(len(stats)), strict=True):
        for n, imp in ref.items():
            assert ranks_alike(imp(group).numpy(), ours[n][i]), (name, n, i)


def test_bn_scale_ranks_as_torch_pruning_does():
    model, stats = model_and_stats("ci_resnet")
    ours = score_blocks(stats, "bn_scale", 0.5)
    for group, s in zip(groups(model, "ci_resnet"), ours, strict=True):
        assert ranks_alike(tp.importance.BNScaleImportance()(group).numpy(), s)


def test_fpgm_is_he_et_al_s_and_torch_pruning_differs_by_its_abs_power():
    """Ours: Σ_j ‖v_c − v_j‖₂ on the signed weights [fc1 row, fc2 column]. Torch-Pruning's
    FPGMImportance takes the distances between |w|^p, per layer, then averages the layers:
    reproduced here exactly, so the difference is that and nothing else."""
    model, stats = model_and_stats("ci")
    ours = score_blocks(stats, "fpgm", 0.5)
    for blk, group, s in zip(model.blocks, groups(model, "ci"), ours, strict=True):
        w1 = blk.mlp.fc1.weight.detach().double()
        w2 = blk.mlp.fc2.weight.detach().double().T
        v = torch.cat([w1, w2], 1)
        assert np.allclose(s, torch.cdist(v, v).sum(1).numpy(), rtol=1e-9)
        theirs = tp.importance.FPGMImportance(p=2)(group).double().numpy()
        per_layer = [torch.cdist(w.abs() ** 2, w.abs() ** 2).sum(0) for w in (w1, w2)]
        mimic = torch.stack(per_layer).mean(0)
        assert ranks_alike(theirs, mimic.numpy())
        assert not ranks_alike(theirs, s)  # the two are different criteria


def test_torch_pruning_hessian_keeps_only_the_last_samples_gradient_and_ours_the_mean():
    torch.manual_seed(0)
    model = build_model(resolve_profile("ci")).eval()
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    mlp = model.blocks[0].mlp
    params = (mlp.fc1.weight, mlp.fc1.bias, mlp.fc2.weight)
    per_sample = []
    imp = tp.importance.HessianImportance()
    for i in range(len(y)):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        per_sample.append([p.grad.detach().clone().double() ** 2 for p in params])
        imp.accumulate_grad(model)
    # its accumulator is keyed by the parameter but tested by the parameter's name: every sample
    # replaces the one before, and the count stays 1
    fc1 = mlp.fc1.weight
    assert torch.allclose(imp._accu_grad[fc1].double(), per_sample[-1][0], rtol=1e-5) and imp._counter[fc1] == 1
    mean_sq = [torch.stack([s[k] for s in per_sample]).mean(0) for k in range(3)]
    assert not torch.allclose(per_sample[-1][0], mean_sq[0])
    # ours: Σ_w w² E[g²], E over the samples, over fc1 row c, fc1 bias c and fc2 column c
    ours = fisher_saliency(model, [[(params[0], 0), (params[1], 0), (params[2], 1)]], x, y)[0]
    w = [p.detach().double() ** 2 for p in params]
    by_hand = (w[0] * mean_sq[0]).sum(1) + w[1] * mean_sq[1] + (w[2] * mean_sq[2]).sum(0)
    assert np.allclose(ours, by_hand.numpy(), rtol=1e-9, atol=0)


def test_lamp_keeps_magnitudes_channels_per_block_but_not_under_global_allocation():
    _, stats = model_and_stats("ci")
    for S in (0.3, 0.5, 0.7, 0.9):
        assert jaccard(score_and_select(stats, "lamp", S)[1], score_and_select(stats, "magnitude", S)[1]) == 1.0
    rng = np.random.default_rng(0)  # blocks of very different scales: a global cut on m empties some
    scaled = [BlockStats.from_magnitudes(i, rng.lognormal(0, 0.3, 64) * 4.0**i) for i in range(4)]
    lamp_g = score_and_select(scaled, "lamp", 0.5, allocation="global")[1]
    mag_g = score_and_select(scaled, "magnitude", 0.5, allocation="global")[1]
    assert jaccard(lamp_g, mag_g) < 0.9
    assert min(m.sum() for m in lamp_g) > 0 and min(m.sum() for m in mag_g) == 0  # LAMP keeps some in every block


def test_matched_random_swaps_exactly_as_many_channels_per_block_near_the_cut():
    _, stats = model_and_stats("ci")
    for of in ("logistic_raw", "tent_smooth"):
        for seed in (0, 1):
            target = score_and_select(stats, of, 0.6, seed)[1]
            mag = score_and_select(stats, "magnitude", 0.6)[1]
            scores, ctrl = score_and_select(stats, "matched_random", 0.6, seed, {"of": of})
            for t, m, c, b in zip(target, mag, ctrl, stats, strict=True):
                assert c.sum() == m.sum() and (c & ~m).sum() == (t & ~m).sum()
                moved = (c ^ m)
                assert np.all(np.abs(b.u[moved] - 0.6) <= 0.3 + 1e-12)
            again = score_and_select(stats, "matched_random", 0.6, seed, {"of": of})[1]
            assert all(np.array_equal(a, c) for a, c in zip(again, ctrl))  # seeded by (of, seed)


def test_the_adaptive_selector_follows_the_papers_boundaries():
    _, stats = model_and_stats("ci")
    assert ADAPTIVE_BOUNDARIES == (0.65, 0.75) and ADAPTIVE_CLASSES == ("magnitude", "logistic_smooth", "logistic_raw")
    for S, chosen in ((0.5, "magnitude"), (0.64, "magnitude"), (0.65, "logistic_smooth"), (0.7, "logistic_smooth"),
                      (0.75, "logistic_raw"), (0.85, "logistic_raw")):  # fmt: skip
        got = score_blocks(stats, "sics_adaptive", S, 3)
        # the chosen class's own function on the adaptive selector's stream: the same scores
        from sics.selection.scorers import get_scorer, scorer_rng

        want = get_scorer(chosen).fn(BlockStats.stack(stats), S, scorer_rng("sics_adaptive", 3))
        assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True)), (S, chosen)
        if chosen != "magnitude":  # and a non-monotone class moves magnitude's selection
            assert jaccard(select(got, S), select(score_blocks(stats, "magnitude", S), S)) < 1.0


def test_criteria_apply_where_their_statistics_exist():
    _, vit = model_and_stats("ci")
    _, res = model_and_stats("ci_resnet")
    assert "bn_scale" not in applicable(criteria(), vit) and "bn_scale" in applicable(criteria(), res)
    assert set(applicable(criteria(), vit)) == set(criteria()) - {"bn_scale"}


def test_batched_criteria_score_a_stack_as_they_score_each_group():
    from sics.selection.groups import Stacked, with_extra
    from sics.selection.scorers import SCORERS, get_scorer

    rng = np.random.default_rng(3)
    m = rng.lognormal(0.0, 0.5, (6, 32))
    keys = ("in_norm", "out_norm", "l1", "out_abs_mean", "bn_scale", "act_abs_mean", "act_l2", "act_var", "fisher")
    extra = {k: list(rng.random((6, 32))) for k in keys}
    plain = with_extra([BlockStats.from_magnitudes(i, row) for i, row in enumerate(m)], extra)
    stack = Stacked(plain, BlockStats.stack(plain))
    for name in criteria():
        if not get_scorer(name).batched:
            continue
        one_by_one = [np.asarray(SCORERS[name].fn(b, 0.7, np.random.default_rng(0))) for b in plain]
        batched = score_blocks(stack, name, 0.7, seed=0)
        if name == "sics_adaptive":  # (random draws: per-group and stacked streams differ)
            continue
        assert all(np.allclose(a, b, rtol=1e-12) for a, b in zip(batched, one_by_one, strict=True)), name


def test_data_aware_criteria_read_their_seeds_calibration_subset():
    """activation, wanda, flap and hessian are stochastic through the calibration subset: two
    seeds draw other images, so other statistics and (here) other selections."""
    from types import SimpleNamespace

    torch.manual_seed(0)
    p = resolve_profile("ci").replace(n_calib=16)
    model = build_model(p).eval()
    data = SimpleNamespace(train_x=torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8),
                           train_y=torch.randint(0, 10, (64,)))  # fmt: skip
    saved = {}
    inputs = UnitInputs(model=model, profile=p, device=CPU, data=lambda: data, test=None, n_test=None,
                        calibrated=lambda key, compute: saved.setdefault(key, compute()))  # fmt: skip
    unit = get_unit("mlp_channels")
    a, b = unit.calibration_stats(inputs, 0), unit.calibration_stats(inputs, 1)
    assert set(a) == {"act_abs_mean", "act_l2", "act_var", "fisher"} and "fisher-s0" in saved
    assert all(not np.allclose(a[k][0], b[k][0]) for k in a)
    assert unit.calibration_stats(inputs, 0)["fisher"][0] is saved["fisher-s0"][0]  # computed once
