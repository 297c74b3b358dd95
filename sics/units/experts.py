"""Experts made from a dense MLP's hidden channels (MoEfication, Zhang et al. 2022), numpy only:
E balanced groups of channels that activate together. A channel is described by its activation
pattern over a sample of tokens (1 where it is positive after the activation function), centred
and scaled to unit norm, so that channels whose patterns agree lie close; balanced k-means then
groups them into E experts of exactly H / E channels each."""

from __future__ import annotations

import numpy as np

from ..errors import ParameterError


def coactivation_features(acts: np.ndarray) -> np.ndarray:
    """One row per channel from activations (tokens, H): its firing pattern, centred, unit norm."""
    fired = (acts > 0).astype(np.float32).T  # (H, tokens)
    fired -= fired.mean(1, keepdims=True)
    norm = np.linalg.norm(fired, axis=1, keepdims=True)
    return fired / np.where(norm > 0, norm, 1.0)


def _balanced_assign(dist: np.ndarray, size: int) -> np.ndarray:
    """Each row to a column, nearest pairs first, at most `size` rows per column."""
    H, E = dist.shape
    labels, counts = np.full(H, -1), np.zeros(E, dtype=int)
    for flat in np.argsort(dist, axis=None, kind="stable"):
        i, e = divmod(int(flat), E)
        if labels[i] < 0 and counts[e] < size:
            labels[i], counts[e] = e, counts[e] + 1
    return labels


def balanced_partition(features: np.ndarray, n_experts: int, seed: int = 0, iters: int = 30) -> np.ndarray:
    """The expert of each channel (H,): balanced k-means on `features` (H, d), every expert
    holding exactly H / n_experts channels; deterministic for a seed."""
    H = len(features)
    if n_experts < 1 or H % n_experts:
        raise ParameterError(f"{H} channels do not split into {n_experts} equal experts")
    size = H // n_experts
    rng = np.random.default_rng(seed)
    centres = features[rng.choice(H, n_experts, replace=False)]
    labels = np.full(H, -1)
    for _ in range(iters):
        dist = (features**2).sum(1)[:, None] - 2 * features @ centres.T + (centres**2).sum(1)[None]
        new = _balanced_assign(dist, size)
        if np.array_equal(new, labels):
            break
        labels = new
        centres = np.stack([features[labels == e].mean(0) for e in range(n_experts)])
    return labels


def fit_router(inputs: np.ndarray, oracle: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """A linear router (D + 1, E): ridge regression of the oracle's expert scores (tokens, E) on
    the block's inputs (tokens, D), with a bias. MoEfication trains a small MLP router with a
    classification loss; a closed-form linear one is deterministic and fits in seconds here."""
    X = np.hstack([inputs, np.ones((len(inputs), 1), dtype=inputs.dtype)]).astype(np.float64)
    gram = X.T @ X + ridge * len(X) * np.eye(X.shape[1])
    return np.linalg.solve(gram, X.T @ oracle.astype(np.float64))


def router_scores(router: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """The router's score of every expert for every token (tokens, E)."""
    return inputs.astype(np.float64) @ router[:-1] + router[-1]


def recall_at_k(scores: np.ndarray, oracle: np.ndarray, k: int) -> float:
    """The mean share of the oracle's top k experts that the top k of `scores` holds."""
    top = np.argsort(-scores, axis=-1, kind="stable")[:, :k]
    best = np.argsort(-oracle, axis=-1, kind="stable")[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top, best, strict=True)]))
