"""The KV-cache study end to end at ci scale (in the KV environment; skipped elsewhere): a tiny LM
trained on a tiny corpus, swept through the one selection path, its results clustered by
context, packed into a bundle, and read back from it without a model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from sics.analysis import claims  # noqa: E402
from sics.study import bundle  # noqa: E402
from sics.study.stage import open_stage, saved_results  # noqa: E402

WORDS = "the of and to a in that it was her she he his not be as for with had you which".split()


@pytest.fixture
def corpus(tmp_path):
    """Two texts of repeated phrases (a model learns them within one epoch), the smaller held out."""
    rng = np.random.default_rng(0)
    phrases = [" ".join(rng.choice(WORDS, 6)) for _ in range(12)]
    for name, n in (("train", 1500), ("held", 300)):
        (tmp_path / f"{name}.txt").write_text(". ".join(rng.choice(phrases, n)) + ".\n", encoding="utf-8")
    return str(tmp_path)


def test_the_kv_study_sweeps_clusters_by_context_and_regenerates_from_its_bundle(corpus):
    stage = open_stage("11_kv_cache", "ci_lm", corpus, epochs=6)
    study = stage.study
    m = study.profile.model
    assert study.unit.name == "kv_positions" and study.n_test % m.window == 0
    n_contexts = study.n_test // m.window
    assert study.dense_accuracy > 0.5  # the phrases are learnt
    assert study.units_removed_accuracy < study.dense_accuracy - 0.02  # and the cache serves them
    results = stage.sweep(["logistic_smooth", "random", "gradient"], [0.5, 0.8], n_seeds=2)
    summary = results.summary()
    assert {len(v) for v in results.correct.values()} == {n_contexts}  # one accuracy per context
    assert set(summary["scorer"]) == {"magnitude", "logistic_smooth", "random", "gradient"}
    ledger = claims.ledger(summary, results.claim_pairs())
    assert len(ledger) and set(ledger["verdict"]) <= set(claims.VERDICTS)
    stage.close(rows=len(results.rows))
    packed = bundle.load(study.name)
    assert packed.meta["cluster"] == m.window and packed.n_test == study.n_test
    again = saved_results(study.name)
    for key, value in results.correct.items():
        np.testing.assert_array_equal(again.correct[key], value)
