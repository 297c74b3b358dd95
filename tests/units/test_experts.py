"""Experts from a dense MLP's channels: a balanced partition that covers every channel once, and
recovers channels planted to fire together."""

import numpy as np
import pytest
from torch import nn

from sics.errors import ParameterError
from sics.units.experts import balanced_partition, coactivation_features


def planted(H: int = 64, E: int = 8, tokens: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Activations (tokens, H) in which the channels of each planted group fire on the same tokens."""
    rng = np.random.default_rng(seed)
    truth = rng.permutation(np.repeat(np.arange(E), H // E))
    fires = rng.random((tokens, E)) < 0.3  # which group fires on which token
    acts = np.where(fires[:, truth], rng.random((tokens, H)) + 0.1, -rng.random((tokens, H)))
    noise = rng.random((tokens, H)) < 0.05  # a few flips
    return np.where(noise, -acts, acts), truth


def test_the_partition_is_balanced_covers_every_channel_once_and_is_deterministic():
    acts, _ = planted()
    labels = balanced_partition(coactivation_features(acts), 8, seed=3)
    assert labels.shape == (64,) and set(labels) == set(range(8))
    assert np.bincount(labels).tolist() == [8] * 8  # every expert 8 channels, each channel once
    assert np.array_equal(labels, balanced_partition(coactivation_features(acts), 8, seed=3))


def test_channels_that_fire_together_become_one_expert():
    acts, truth = planted()
    labels = balanced_partition(coactivation_features(acts), 8)
    for e in range(8):  # each expert is one planted group, whatever its number
        assert len(set(truth[labels == e])) == 1


def test_an_uneven_split_is_one_clear_error():
    with pytest.raises(ParameterError, match="512 channels do not split into 30 equal experts"):
        balanced_partition(np.zeros((512, 4)), 30)


def test_a_token_running_k_experts_is_the_dense_mlp_without_the_other_experts_channels():
    import torch
    from timm.layers import Mlp

    from sics.units.expert_ops import moe_mlp
    from sics.units.ops import narrowed

    torch.manual_seed(0)
    mlp = Mlp(16, 64).eval()
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(8), 8))  # 8 experts of 8 channels
    x = torch.randn(5, 16)
    chosen = torch.zeros(5, 8, dtype=torch.bool)
    for t, k in enumerate([1, 3, 5, 7, 2]):  # a random choice of k < E experts per token
        chosen[t, torch.randperm(8)[:k]] = True
    with torch.no_grad():
        out = moe_mlp(mlp, x, labels, chosen)
        for t in range(5):
            keep = torch.from_numpy(np.flatnonzero(chosen[t].numpy()[labels]))
            sliced = nn.Sequential(narrowed(mlp.fc1, keep, 0), mlp.act, narrowed(mlp.fc2, keep, 1))
            assert torch.allclose(out[t], sliced(x[t]), atol=1e-6)
        everything = moe_mlp(mlp, x, labels, torch.ones(5, 8, dtype=torch.bool))
        assert torch.allclose(everything, mlp(x), atol=1e-6)  # every expert: the dense MLP


def test_the_oracle_ranks_experts_by_their_contribution_and_top_k_keeps_the_k_highest():
    import torch
    from timm.layers import Mlp

    from sics.units.expert_ops import expert_output_norms, moe_mlp, top_experts

    torch.manual_seed(1)
    mlp = Mlp(16, 64).eval()
    labels = np.repeat(np.arange(8), 8)
    x = torch.randn(6, 16)
    with torch.no_grad():
        norms = expert_output_norms(mlp, x, labels)
        for e in range(8):  # each expert alone: its contribution is the output minus fc2's bias
            only = torch.zeros(6, 8, dtype=torch.bool)
            only[:, e] = True
            alone = moe_mlp(mlp, x, labels, only) - mlp.fc2.bias
            assert torch.allclose(norms[:, e], alone.norm(dim=-1), atol=1e-5)
        uneven = np.array([0] * 12 + [1] * 4 + list(np.repeat(np.arange(2, 8), 8)))  # the general path
        slow = expert_output_norms(mlp, x, uneven)
        for e in (0, 1):
            only = torch.zeros(6, 8, dtype=torch.bool)
            only[:, e] = True
            assert torch.allclose(slow[:, e], (moe_mlp(mlp, x, uneven, only) - mlp.fc2.bias).norm(dim=-1), atol=1e-5)
        chosen = top_experts(norms, 3)
    assert chosen.sum(-1).tolist() == [3] * 6
    for t in range(6):  # the chosen ones are the three largest
        assert set(torch.nonzero(chosen[t]).flatten().tolist()) == set(norms[t].argsort(descending=True)[:3].tolist())


def test_a_linear_router_recovers_a_linear_oracle_and_recall_counts_the_shared_top_k():
    from sics.units.experts import fit_router, recall_at_k, router_scores

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 12))
    truth = rng.normal(size=(12, 8))
    oracle = X @ truth + 0.5
    router = fit_router(X[:1500], oracle[:1500], ridge=1e-8)
    assert np.allclose(router_scores(router, X[1500:]), oracle[1500:], atol=1e-4)
    assert recall_at_k(router_scores(router, X[1500:]), oracle[1500:], 3) == 1.0
    scores = np.array([[3.0, 2.0, 1.0, 0.0], [0.0, 1.0, 2.0, 3.0]])
    oracle = np.array([[3.0, 0.0, 2.0, 1.0], [3.0, 2.0, 1.0, 0.0]])
    assert recall_at_k(scores, oracle, 2) == (0.5 + 0.0) / 2  # {0,1} vs {0,2}; {3,2} vs {0,1}
