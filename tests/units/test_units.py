"""Units of pruning: MLP channels unchanged, conv channels of a CIFAR ResNet, and vision tokens.

Each unit applies a keep-mask by masking and by slicing/gathering with the same logits; the
κ=0 scorers keep the same units; the sweeps, statistics and claims run on every unit unchanged.
"""

import numpy as np
import pytest
import torch

from sics.analysis.claims import ledger
from sics.config import resolve_profile
from sics.errors import ParameterError
from sics.files import stable_hash
from sics.models import build_model
from sics.selection.groups import BlockStats
from sics.selection.scorers import get_scorer, score_blocks
from sics.selection.select import mask_hash, select
from sics.study.stage import Results, load_correct
from sics.study.study import is_default_unit, prepare
from sics.study.sweep import row_key, run_sweep, scorer_version
from sics.units import get_unit
from sics.units import token_ops as tko
from sics.units import tokens as tk
from sics.units.conv_channels import conv_magnitudes, masked_conv, residual_blocks, sliced_conv

S4 = [0.5, 0.6, 0.7, 0.8]


RESNETS = {"he": resolve_profile("ci_resnet"),  # ResNet-8: a block per stage, strided shortcuts
           "page": resolve_profile("resnet").replace(width=4)}  # ResNet-9 layout, narrow


def _resnet(profile, seed: int = 0) -> torch.nn.Module:
    """An eval-mode ResNet whose BN statistics, scales (positive) and shifts matter."""
    torch.manual_seed(seed)
    model = build_model(profile).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.3)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.3)
    return model


@pytest.fixture(scope="module", params=list(RESNETS))
def resnet(request):
    return _resnet(RESNETS[request.param])  # slicing BN has to be right


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return build_model(resolve_profile("ci")).eval()


def test_the_mlp_channel_row_key_is_the_one_made_before_units_existed(tiny_tree):
    # (as the committed profiles evaluate: without fp32 decisions, which enter the key where set)
    study = prepare("ci", str(tiny_tree), device="cpu", progress=False, fp32_decisions=False)
    assert study.unit.name == "mlp_channels" and is_default_unit(study.unit) and study.name == "ci"
    config = dict(ckpt=study.trained.ckpt_id, n_test=study.n_test, scorer="tent_raw",
                  params=get_scorer("tent_raw").params({}), S=0.7, seed=1, allocation="block",
                  recovery=0, n_calib=study.profile.n_calib, version=scorer_version("tent_raw"))  # fmt: skip
    assert row_key(study, "tent_raw", 0.7, 1, {}, "block", 0) == stable_hash(config)
    decided = prepare("ci", str(tiny_tree), device="cpu", progress=False)
    assert row_key(decided, "tent_raw", 0.7, 1, {}, "block", 0) == stable_hash({**config, "fp32_decisions": True})
    assert "-tokens" not in study.results.folder and "conv" not in study.results.folder


@pytest.mark.parametrize("S", [0.0, 0.5, 0.8])
def test_conv_channels_masked_and_sliced_give_the_same_logits(resnet, S):
    x = torch.randn(6, 3, 32, 32)
    stats = [BlockStats.from_magnitudes(i, m) for i, m in enumerate(conv_magnitudes(resnet))]
    masks = select(score_blocks(stats, "tent_raw", S, seed=2), S)
    widths = [blk.conv1.out_channels for blk in residual_blocks(resnet)]
    with torch.no_grad(), masked_conv(resnet, masks):
        a = resnet(x)
    small = sliced_conv(resnet, masks)
    with torch.no_grad():
        b = small(x)
        dense = resnet(x)
    assert [blk.conv1.out_channels for blk in residual_blocks(small)] == [int(m.sum()) for m in masks]
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    if S > 0:
        assert not torch.allclose(a, dense, atol=1e-3)
    assert [blk.conv1.out_channels for blk in residual_blocks(resnet)] == widths  # untouched


def test_a_conv_block_without_channels_adds_only_its_shortcut(resnet):
    x = torch.randn(3, 3, 32, 32)
    none = [np.zeros(b.conv1.out_channels, dtype=bool) for b in residual_blocks(resnet)]
    with torch.no_grad(), masked_conv(resnet, none):
        a = resnet(x)
    with torch.no_grad():
        b = sliced_conv(resnet, none)(x)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_conv_magnitude_is_the_norm_of_filter_and_input_slice(resnet):
    blk = residual_blocks(resnet)[1]
    c = 3
    manual = torch.cat([blk.conv1.weight[c].flatten(), blk.conv2.weight[:, c].flatten()]).detach().double().norm()
    assert conv_magnitudes(resnet)[1][c] == pytest.approx(float(manual), rel=1e-12)


def test_the_resnet_layouts_have_their_blocks():
    he, page = (build_model(p) for p in RESNETS.values())
    assert [b.conv1.out_channels for b in residual_blocks(he)] == [8, 16, 32]
    assert [b.conv1.out_channels for b in residual_blocks(page)] == [8, 32]  # 2w and 8w, w = 4
    assert page(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ParameterError, match="6n \\+ 2"):
        build_model(RESNETS["he"].replace(depth=12))


def test_mlp_channels_cannot_prune_a_resnet(resnet):
    from sics.units.mlp_channels import mlp_blocks

    with pytest.raises(ParameterError, match="use conv_channels"):
        mlp_blocks(resnet)


def test_tokens_masked_and_gathered_give_the_same_logits(vit):
    x = torch.randn(5, 3, 32, 32)
    T = (32 // 8) ** 2
    g = torch.Generator().manual_seed(0)
    for k in (1, T // 2, T):
        keep = torch.stack([torch.randperm(T, generator=g)[:k].sort().values for _ in range(5)])
        for block in (0, 2, 3):
            a = tko.masked(vit, x, keep, block)
            b = tko.gathered(vit, x, keep, block)
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    full = torch.arange(T).expand(5, T)
    with torch.no_grad():
        torch.testing.assert_close(tko.gathered(vit, x, full, 2), vit(x), rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def token_study(tiny_tree, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SICS_CACHE", str(tmp_path_factory.mktemp("tok-cache")))
        mp.setenv("SICS_FIGURES", str(tmp_path_factory.mktemp("tok-figures")))
        study = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2, unit="tokens")
        rows = run_sweep(study, ["magnitude", "magnitude_sq", "log_magnitude", "logistic_smooth", "tent_raw",
                                 "fake_nonmonotone", "gradient", "random", "bump", "sine_smooth", "tent_smooth",
                                 "logistic_raw"], S4, n_seeds=2)  # fmt: skip
        results = Results(rows, load_correct(study, rows))
    return study, rows, results


def test_a_token_group_is_an_image_and_monotone_transforms_keep_the_same_tokens(token_study):
    study, rows, _ = token_study
    T = 16  # ci: 32 px, patch 8
    assert study.name == "ci-tokens" and len(study.selection.stats) == study.n_test
    assert all(b.H == T for b in study.selection.stats)
    for S in S4:
        _, mag = study.masks("magnitude", S)
        assert all(int(m.sum()) == round((1 - S) * T) for m in mag)  # every image keeps k tokens
        for name in ("magnitude_sq", "log_magnitude"):
            _, other = study.masks(name, S)
            assert all(np.array_equal(a, b) for a, b in zip(mag, other, strict=True)), (name, S)
        at = rows[rows["sparsity"] == S]
        assert at.loc[at["kappa"] == "0", "mask_hash"].nunique() == 1
        _, chaos = study.masks("tent_raw", S, seed=1)
        assert sum(not np.array_equal(a, b) for a, b in zip(mag, chaos, strict=True)) > 0
    assert (rows["unit"] == "tokens-b-1-cls_attention").all()


def test_token_selections_differ_per_image_and_follow_the_importance(token_study):
    study, _, _ = token_study
    _, masks = study.masks("magnitude", 0.5)
    assert len({mask_hash([m]) for m in masks}) > 1
    state = study.selection.inputs.cache[study.unit.tag]
    for i in (0, 7):
        imp = state["importance"][i]
        assert imp[masks[i]].min() >= imp[~masks[i]].max()


def test_token_evaluation_equals_a_full_forward_with_the_kept_tokens(token_study):
    study, _, _ = token_study
    _, masks = study.masks("tent_raw", 0.6, seed=1)
    got = study.evaluate(masks)
    keep = torch.as_tensor(tk.keep_index(masks))
    want = []
    for s, (x, y) in zip(range(0, study.n_test, 512), study.test.batches(512), strict=False):
        want.append((tko.gathered(study.model, x, keep[s : s + len(y)], 2).argmax(1) == y).numpy())
    assert np.array_equal(got, np.concatenate(want))


def test_the_token_gradient_baseline_uses_no_label(token_study, monkeypatch):
    """Gradient × activation of the predicted class's logit: the same with every label wrong,
    and what a hand computation for one image gives."""
    study, _, _ = token_study
    state = study.selection.inputs.cache[study.unit.tag]
    first = [a.copy() for a in study.unit.taylor(study.selection.inputs, 0)]
    study.calibration.new.pop("taylor-sum")  # computed again below, with every label wrong
    monkeypatch.setattr(study.test, "y", torch.full_like(study.test.y, -1))
    again = study.unit.taylor(study.selection.inputs, 3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    x = state["x"][:1].clone().requires_grad_(True)
    logits = tko.suffix(study.model, x, state["block"])
    logits[0, logits[0].argmax()].backward()
    manual = ((x * x.grad).sum(-1)[0, 1:].double() ** 2).detach().numpy()
    np.testing.assert_allclose(again[0], manual, rtol=1e-4, atol=1e-12)


def test_claims_are_judged_for_tokens_by_the_same_rules(token_study):
    _, _, results = token_study
    led = ledger(results.summary(), results.claim_pairs())
    assert led["claim"].tolist() == ["C1", "C2", "C3", "C4", "C5", "C6"]
    assert led.loc[0, "verdict"] == "supported"


def test_tokens_refuse_global_allocation_and_recovery(token_study):
    study, _, _ = token_study
    with pytest.raises(ParameterError, match="allocation 'block'"):
        study.masks("magnitude", 0.5, allocation="global")
    with pytest.raises(ParameterError, match="recovery fine-tuning is not defined"):
        study.evaluate(study.masks("magnitude", 0.5)[1], recovery_steps=2)


def test_a_resnet_study_runs_the_same_sweep(tiny_tree):
    study = prepare("ci_resnet", str(tiny_tree), device="cpu", progress=False)
    assert study.unit.name == "conv_channels" and study.name == "ci_resnet"
    assert [b.H for b in study.selection.stats] == [8, 16, 32]
    rows = run_sweep(study, ["magnitude", "log_magnitude", "tent_raw", "gradient"], [0.5, 0.8], n_seeds=2)
    for S in (0.5, 0.8):
        at = rows[rows["sparsity"] == S]
        assert at.loc[at["kappa"] == "0", "mask_hash"].nunique() == 1 and at["mask_hash"].nunique() > 1
    assert rows["accuracy"].between(0, 1).all() and (rows["unit"] == "conv_channels").all()
    assert study.units_removed_accuracy <= study.dense_accuracy + 1e-9


def test_unknown_units_and_settings_are_one_line(tiny_tree):
    with pytest.raises(ParameterError, match="unknown unit 'heads'; valid: mlp_channels, conv_channels, tokens"):
        get_unit("heads")
    with pytest.raises(ParameterError, match="unknown token importance 'grad'"):
        get_unit("tokens", importance="grad")
    with pytest.raises(ParameterError, match="unit 'tokens'"):
        get_unit("tokens", blok=2)


def test_page_options_pool_first_and_logit_scale_keep_the_function():
    """Eval-mode BN with a positive scale and ReLU are monotone per channel, so they commute with
    max-pooling: moving the pool first (cheaper) keeps the function; the logit scale only scales."""
    base = RESNETS["page"].replace(pool_first=False, logit_scale=1.0)
    plain, first, scaled = (_resnet(base.replace(**c)) for c in ({}, {"pool_first": True}, {"logit_scale": 0.125}))
    kinds = [type(m).__name__ for m in first.blocks[:4]]
    assert kinds == ["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU"]
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        a, b, c = plain(x), first(x), scaled(x)
    torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(c, 0.125 * a, rtol=1e-5, atol=1e-6)
    with pytest.raises(ParameterError, match="depth 9"):
        build_model(RESNETS["he"].replace(pool_first=True))
    with pytest.raises(ParameterError, match="logit_scale must be positive"):
        build_model(base.replace(logit_scale=0.0))
