"""The byte n-gram baselines: proper distributions, the unigram's entropy, and an n-gram that
learns a deterministic text."""

import numpy as np

from sics.analysis.ngram import VOCAB, WittenBell, baseline_bits


def test_witten_bell_is_a_distribution_over_the_bytes_for_every_history():
    rng = np.random.default_rng(0)
    train = rng.integers(97, 101, size=5000).astype(np.uint8)  # four letters, some histories unseen
    wb = WittenBell(train, order=4)
    history = np.array([[97, 98, 99], [100, 100, 100], [0, 1, 2]], dtype=np.uint8)  # the last never seen
    totals = sum(wb.prob(history, np.full(3, w, dtype=np.int64)) for w in range(VOCAB))
    assert np.allclose(totals, 1.0)


def test_the_unigram_costs_the_entropy_and_the_ngram_learns_a_cycle():
    cycle = np.frombuffer(b"abcdefgh" * 2000, dtype=np.uint8)
    contexts = cycle[: 10 * 41].reshape(10, 41)  # context 32 + window 8 + 1
    bits = baseline_bits(cycle, contexts, window=8, order=3)
    assert np.isclose(bits["unigram"], -np.log2(2001 / (16000 + VOCAB)))  # 8 equally frequent bytes, add-one
    assert bits["3-gram"] < 0.01  # each byte follows from the one before
