"""The committed models: their weights load, their bundles hold what the issues promised, and, where
the real CIFAR-10 is given (as in CI), the weights still score that on the full 10k test set."""

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
# profile -> the dense accuracy its committed model must reach on the 10k test set
FLOORS = {"reference": 0.75, "resnet": 0.90}


def _committed(name: str) -> None:
    if not weights.paths(name)[0].exists():
        pytest.skip(f"no committed weights for {name}")


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_committed_weights_load_and_their_bundle_scores_the_floor(name, monkeypatch):
    monkeypatch.setenv("SICS_FIGURES", str(REPO / "figures"))
    _committed(name)
    state, meta = weights.load(name, training_fields(resolve_profile(name)))  # hash and recipe checked
    assert state and meta["test_accuracy"] >= FLOORS[name]
    found = bundle.load(name)
    assert found is not None and found.n_test == 10_000
    study = prepare(name, progress=False)  # no data: the committed weights and bundle only
    dense = study.lookup(mask_hash(study.all_kept()))  # keyed like every other result: all kept
    assert dense is not None and dense.size == 10_000 and dense.mean() >= FLOORS[name]


@pytest.mark.skipif(not REAL_DATA, reason="needs the real CIFAR-10 (SICS_DATA)")
@pytest.mark.parametrize("name", sorted(FLOORS))
def test_committed_weights_score_the_floor_on_the_real_test_set(name, monkeypatch):
    """Re-evaluates the dense model afresh on all 10k test images and compares with the bundle."""
    monkeypatch.setenv("SICS_FIGURES", str(REPO / "figures"))
    monkeypatch.setenv("SICS_CACHE", str(REPO / ".cache"))  # the decoded data, shared with nbval
    _committed(name)
    study = prepare(name, REAL_DATA, progress=False)
    table, ok = verify(study, n=0, tolerance=0.002)
    assert ok, table.to_string()
    assert table.loc[0, "scorer"] == "dense" and table.loc[0, "now"] >= FLOORS[name] * 100
