"""Results that come in clusters (the KV study's predicted bytes, a window of them per context):
the statistics read each cluster's accuracy, so every interval is clustered by context."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from sics.analysis.seeds import seed_test
from sics.analysis.stats import paired_escape
from sics.analysis.summaries import outcomes, per_cluster, summarize


def test_per_cluster_is_each_runs_accuracy_and_keeps_the_mean():
    c = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1], dtype=bool)
    got = per_cluster(c, 4)
    np.testing.assert_array_equal(got, [0.5, 0.25, 1.0])
    assert got.mean() == c.mean() and got.dtype == np.float64
    assert per_cluster(c, 1) is c
    with pytest.raises(ValueError, match="clusters of 5"):
        per_cluster(c, 5)
    assert outcomes(got).dtype == np.float64 and outcomes(c.astype(int)).dtype == bool


def test_clustered_interval_is_wider_than_treating_the_items_as_independent():
    """Items within a cluster share its difficulty: the image term over clusters sees that,
    the one over items does not (a simulation: 200 contexts of 32 bytes)."""
    rng = np.random.default_rng(0)
    n, w = 200, 32
    base = rng.uniform(0.2, 0.8, n)  # each context's difficulty
    shift = rng.normal(0.0, 0.05, n)  # each context's response to the selection
    ref = rng.random((n, w)) < base[:, None]
    sel = rng.random((3, n, w)) < np.clip(base + shift, 0, 1)[None, :, None]
    by_item = paired_escape(sel.reshape(3, -1), ref.reshape(-1))
    by_context = paired_escape(
        np.stack([per_cluster(s, w) for s in sel.reshape(3, -1)]), per_cluster(ref.reshape(-1), w)
    )
    assert by_item.mean == pytest.approx(by_context.mean)
    assert by_context.se_image > by_item.se_image


def test_a_seed_on_clusters_is_judged_by_the_paired_t_test_not_mcnemar():
    ref = np.array([0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    up = seed_test(ref + np.array([0.1, 0.12, 0.09, 0.11, 0.1, 0.1]), ref)
    assert (
        up["escape"] == pytest.approx(10.333, abs=1e-3)
        and up["b"] == 6
        and up["c"] == 0
        and up["p"] < 1e-5
    )
    same = seed_test(ref.copy(), ref)
    assert same["escape"] == 0 and same["p"] == 1.0
    bits = seed_test(np.array([1, 1, 0, 1], bool), np.array([0, 1, 0, 1], bool))
    assert (bits["b"], bits["c"]) == (1, 0) and bits["p"] == 1.0  # McNemar: 1 of 1, two-sided


def test_summaries_run_on_cluster_accuracies():
    rng = np.random.default_rng(1)
    correct, rows = {}, []
    for scorer, seeds in (("magnitude", [0]), ("random", [0, 1, 2])):
        for s in seeds:
            key = f"{scorer}{s}"
            correct[(key, 0, 0)] = per_cluster(rng.random(40 * 8) < 0.6, 8)
            rows.append(dict(scorer=scorer, kappa="random" if scorer == "random" else "0", kappa_hat=0, sparsity=0.5,
                             seed=s, mask_hash=key, recovery_steps=0, allocation="block", params="{}",
                             overlap_magnitude=1.0, jaccard_magnitude=1.0, tag="main"))  # fmt: skip
    out = summarize(pd.DataFrame(rows), correct)
    r = out[out["scorer"] == "random"].iloc[0]
    ref = correct[("magnitude0", 0, 0)]
    want = np.mean([correct[(f"random{s}", 0, 0)].mean() - ref.mean() for s in range(3)]) * 100
    assert r["escape"] == pytest.approx(want) and r["n_seeds"] == 3
