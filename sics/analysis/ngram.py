"""Byte n-gram baselines for the language models' held-out loss (numpy only): a unigram, and an
interpolated Witten-Bell n-gram (Witten and Bell 1991; Chen and Goodman 1999, eq. 14), counted on
the training bytes and scored on the held-out targets with the same preceding bytes the LM sees."""

from __future__ import annotations

import numpy as np

VOCAB = 256


def _codes(stream: np.ndarray, n: int) -> np.ndarray:
    """The n-grams of a byte stream as integers (base 256), one per position from n - 1 on."""
    s = stream.astype(np.int64)
    out = np.zeros(len(s) - n + 1, dtype=np.int64)
    for k in range(n):
        out = out * VOCAB + s[k : len(s) - n + 1 + k]
    return out


def _lookup(keys: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
    i = np.searchsorted(keys, query).clip(0, max(len(keys) - 1, 0))
    return np.where(keys[i] == query, counts[i], 0) if len(keys) else np.zeros(len(query), dtype=np.int64)


class WittenBell:
    """P(w | h) = (c(h w) + N1+(h .) P_lower(w | h')) / (c(h) + N1+(h .)), down to add-one unigrams."""

    def __init__(self, train: np.ndarray, order: int):
        self.order = order
        self.unigram = (np.bincount(train, minlength=VOCAB) + 1) / (len(train) + VOCAB)
        self.tables = {}
        for n in range(2, order + 1):
            grams, c = np.unique(_codes(train, n), return_counts=True)
            hist, hc = np.unique(grams // VOCAB, return_counts=True)  # distinct continuations per history
            totals = np.bincount(np.searchsorted(hist, grams // VOCAB), weights=c, minlength=len(hist))
            self.tables[n] = (grams, c, hist, hc, totals.astype(np.int64))

    def prob(self, history: np.ndarray, target: np.ndarray) -> np.ndarray:
        """P(target | the last order - 1 bytes of each history row), rows of `history` (N, >= order - 1)."""
        p = self.unigram[target]
        h = np.zeros(len(target), dtype=np.int64)
        for n in range(2, self.order + 1):
            h = h + history[:, -(n - 1)].astype(np.int64) * VOCAB ** (n - 2)  # the history grows leftwards
            grams, c, hist, hc, totals = self.tables[n]
            c_hw = _lookup(grams, c, h * VOCAB + target)
            types, c_h = _lookup(hist, hc, h), _lookup(hist, totals, h)
            p = np.where(c_h > 0, (c_hw + types * p) / np.maximum(c_h + types, 1), p)
        return p


def baseline_bits(train: np.ndarray, contexts: np.ndarray, window: int, order: int = 5) -> dict[str, float]:
    """Mean bits per byte of the unigram and of the order-`order` Witten-Bell n-gram on the
    last `window` targets of each held-out context (N, L + window + 1)."""
    model = WittenBell(train, order)
    bits = {"unigram": [], f"{order}-gram": []}
    for j in range(contexts.shape[1] - window, contexts.shape[1]):
        target = contexts[:, j].astype(np.int64)
        bits["unigram"].append(-np.log2(model.unigram[target]))
        bits[f"{order}-gram"].append(-np.log2(model.prob(contexts[:, :j], target)))
    return {k: float(np.mean(v)) for k, v in bits.items()}
