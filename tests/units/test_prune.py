import copy

import numpy as np
import pytest
import torch

from sics.config import resolve_profile
from sics.errors import ParameterError
from sics.models import build_model
from sics.selection.scorers import score_blocks
from sics.selection.select import (
    check_sparsity,
    jaccard,
    keep_count,
    mask_hash,
    overlap,
    select,
    top_k,
)
from sics.units.mlp_channels import block_stats, masked, mlp_blocks, sliced


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model(resolve_profile("ci", depth=3, embed_dim=48, num_heads=2, mlp_hidden=96)).eval()
    with torch.no_grad():  # non-zero biases so that slicing them matters
        for mlp in mlp_blocks(m):
            mlp.fc1.bias.normal_(0, 0.5)
            mlp.fc2.bias.normal_(0, 0.5)
    return m


@pytest.mark.parametrize("scorer,S,allocation", [("magnitude", 0.7, "block"), ("tent_raw", 0.5, "block"),
                                                 ("random", 0.8, "global"), ("magnitude", 0.0, "block")])
def test_masked_and_sliced_models_give_the_same_logits(model, scorer, S, allocation):
    x = torch.randn(8, 3, 32, 32)
    masks = select(score_blocks(block_stats(model), scorer, S, seed=1), S, allocation)
    with torch.no_grad(), masked(model, masks):
        a = model(x)
    small = sliced(model, masks)
    with torch.no_grad():
        b = small(x)
        dense = model(x)  # hooks removed on exit
    assert [mlp.fc1.out_features for mlp in mlp_blocks(small)] == [int(m.sum()) for m in masks]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    if S > 0:
        assert not torch.allclose(a, dense, atol=1e-3)  # pruning changed something
    assert [mlp.fc1.out_features for mlp in mlp_blocks(model)] == [96] * 3  # original untouched


def test_a_block_without_channels_keeps_only_its_output_bias(model):
    """Every channel removed (the dense table's no-MLP accuracy): sliced = masked, and each MLP
    then adds exactly fc2's bias."""
    x = torch.randn(4, 3, 32, 32)
    none = [np.zeros(mlp.fc1.out_features, dtype=bool) for mlp in mlp_blocks(model)]
    small = sliced(model, none)
    assert [mlp.fc1.out_features for mlp in mlp_blocks(small)] == [0, 0, 0]
    with torch.no_grad(), masked(model, none):
        a = model(x)
    with torch.no_grad():
        b = small(x)
        h = torch.randn(2, 5, 48)
        mlp = mlp_blocks(small)[0]
        torch.testing.assert_close(mlp(h), mlp_blocks(model)[0].fc2.bias.expand(2, 5, 48))
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_sparsity_outside_unit_interval_is_rejected():
    for bad in (-0.1, 1.0, 1.5, "x"):
        with pytest.raises(ParameterError, match="outside \\[0, 1\\)|must be a number"):
            check_sparsity(bad)
    assert keep_count(0.0, 10) == 10 and keep_count(0.75, 10) == 3  # 2.5 rounds up


def test_unknown_allocation_is_named():
    with pytest.raises(ParameterError, match="unknown allocation 'layer'; valid: block, global"):
        select([np.ones(4)], 0.5, "layer")


def test_global_allocation_ranks_across_blocks():
    scores = [np.array([1.0, 2.0, 3.0, 4.0]), np.array([10.0, 20.0, 30.0, 40.0])]
    masks = select(scores, 0.5, "global")
    assert [m.tolist() for m in masks] == [[False] * 4, [True] * 4]


def test_mask_hash_overlap_and_jaccard():
    a = [np.array([1, 1, 0, 0], bool)]
    b = [np.array([1, 0, 1, 0], bool)]
    assert mask_hash(a) == mask_hash([m.copy() for m in a]) and mask_hash(a) != mask_hash(b)
    assert mask_hash(a) != mask_hash([a[0][:2], a[0][2:]])  # same bits, other block split
    assert overlap(b, a) == 0.5 and jaccard(a, b) == pytest.approx(1 / 3)


def test_block_stats_of_a_model_with_dead_channels(model):
    """m is the norm of [fc1 row, fc2 column]; dead channels (m = 0) tie, and the rank breaks
    the tie as top_k does, so the rank-based u keeps magnitude's channels at every cut."""
    dead = [3, 10, 40, 41, 77]
    m2 = copy.deepcopy(model)
    mlp = mlp_blocks(m2)[1]
    with torch.no_grad():
        mlp.fc1.weight[dead] = 0
        mlp.fc2.weight[:, dead] = 0
    stats = block_stats(m2)
    w = mlp_blocks(model)[0]
    expected = torch.cat([w.fc1.weight, w.fc2.weight.T], 1).detach().double().norm(dim=1).numpy()
    np.testing.assert_allclose(stats[0].m, expected, rtol=1e-12)
    b = stats[1]
    assert b.m[dead].tolist() == [0.0] * 5 and (np.delete(b.m, dead) > 0).all()
    assert b.rank[dead].tolist() == [4, 3, 2, 1, 0]  # lower index, higher rank
    for k in range(88, 97):  # cuts through the five tied channels
        assert np.array_equal(top_k(b.u, k), top_k(b.m, k)), k
    for S in (0.0, 0.03, 0.05):  # keep 96, 93, 91 of 96
        kept = select(score_blocks(stats, "magnitude", S), S)[1]
        assert np.array_equal(kept, top_k(b.u, int(kept.sum()))), S
        assert sorted(np.flatnonzero(~kept)) == sorted(dead[::-1][: 96 - int(kept.sum())])
