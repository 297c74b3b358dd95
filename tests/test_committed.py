"""The committed models: their weights load and score what the issues promised, their bundles
agree, and, where the real CIFAR-10 is given (as in CI), the weights still score that on the full
10k test set when evaluated afresh."""

from __future__ import annotations

import os

import pytest

from sics import bundle, weights
from sics.config import resolve_profile
from sics.paths import REPO
from sics.prune import mask_hash
from sics.sweep import prepare
from sics.train import training_fields
from sics.verify import verify

REAL_DATA = os.environ.get("SICS_DATA")  # read before the autouse fixture removes it
# profile -> the dense accuracy its committed model must keep on the 10k test set. These guard the
# committed weights (a broken export or load scores far lower). The ResNet's is issue 11's target:
# 90% on the 10k test set (its committed model scored 90.01% in fp32, 90.02% in the study's bf16).
FLOORS = {"reference": 0.75, "resnet": 0.90}


@pytest.fixture
def committed(request, monkeypatch):
    """The profile's committed weights, read from the repository's own figures/."""
    name = request.param
    monkeypatch.setenv("SICS_FIGURES", str(REPO / "figures"))
    if not weights.paths(name)[0].exists():
        pytest.skip(f"no committed weights for {name}")
    return name


@pytest.mark.parametrize("committed", sorted(FLOORS), indirect=True)
def test_committed_weights_load_and_score_the_floor(committed):
    name = committed
    state, meta = weights.load(name, training_fields(resolve_profile(name)))  # hash and recipe checked
    assert state and meta["test_accuracy"] >= FLOORS[name]
    if bundle.load(name) is None:
        return  # weights committed before their study: the record above is all there is yet
    study = prepare(name, progress=False)  # no data: the committed weights and bundle only
    assert study.bundle is not None and study.n_test == 10_000
    dense = study.lookup(mask_hash(study.all_kept()))  # keyed like every other result: all kept
    assert dense is not None and dense.size == 10_000 and dense.mean() >= FLOORS[name]


@pytest.mark.skipif(not REAL_DATA, reason="needs the real CIFAR-10 (SICS_DATA)")
@pytest.mark.parametrize("committed", sorted(FLOORS), indirect=True)
def test_committed_weights_score_the_floor_on_the_real_test_set(committed, monkeypatch):
    """Evaluates the dense model afresh on all 10k test images (and, with a bundle, compares)."""
    name = committed
    monkeypatch.setenv("SICS_CACHE", str(REPO / ".cache"))  # the decoded data, shared with nbval
    study = prepare(name, REAL_DATA, progress=False)
    if study.bundle is not None:
        table, ok = verify(study, n=0, tolerance=0.002)
        assert ok, table.to_string()
        accuracy = table.loc[0, "now"] / 100
    else:
        accuracy = study.evaluate(study.all_kept()).mean()
    assert study.n_test == 10_000 and accuracy >= FLOORS[name]
