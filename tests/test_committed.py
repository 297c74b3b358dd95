"""The committed models: their weights load and keep their accuracy floor, their bundles agree,
and, where the real CIFAR-10 is given (as in CI), the weights evaluated afresh on a fixed sample
of test images reproduce the bundle there (`make verify` re-evaluates all 10,000)."""

from __future__ import annotations

import os

import pytest

from sics.cli.verify import check_sample
from sics.config import resolve_profile
from sics.paths import REPO
from sics.selection.select import mask_hash
from sics.study import bundle
from sics.study.results import pred_name
from sics.study.study import prepare
from sics.training import weights
from sics.training.checkpoints import training_fields

REAL_DATA = os.environ.get("SICS_DATA")  # read before the autouse fixture removes it
# profile -> the dense accuracy its committed model must keep on the 10k test set. These guard the
# committed weights (a broken export or load scores far lower). The ResNet's is its recipe's
# target: 90% on the 10k test set (it scored 90.01% in fp32, 90.02% in the study's bf16).
FLOORS = {"reference": 0.75, "resnet": 0.90}
SAMPLE = 1000  # test images re-evaluated here: seconds in fp32, and a broken load flips hundreds


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
    dense = study.results.lookup(pred_name(mask_hash(study.selection.all_kept()), 0))  # keyed like every other result
    assert dense is not None and dense.size == 10_000 and dense.mean() >= FLOORS[name]


@pytest.mark.skipif(not REAL_DATA, reason="needs the real CIFAR-10 (SICS_DATA)")
@pytest.mark.parametrize("committed", sorted(FLOORS), indirect=True)
def test_committed_weights_reproduce_their_bundle_on_a_sample_of_the_real_test_set(committed, monkeypatch):
    """The dense model afresh on a fixed sample of the real test images, in fp32 (fast on every
    CPU), against the bundle within the cross-precision tolerance."""
    name = committed
    monkeypatch.setenv("SICS_CACHE", str(REPO / ".cache"))  # the decoded data, shared with nbval
    study = prepare(name, REAL_DATA, progress=False, eval_precision="fp32")
    if study.bundle is None:
        pytest.skip(f"{name}: weights committed before their study (no bundle to compare)")
    differ, checked, tolerance = check_sample(study, SAMPLE)
    assert checked == SAMPLE and differ <= tolerance * checked, f"{differ} of {checked} images differ"


@pytest.mark.parametrize("committed", sorted(FLOORS), indirect=True)
def test_the_statistics_read_without_torch_are_the_models_and_select_the_committed_rows(committed):
    """A unit's statistics come from the weights by state-dict name: read from the committed file
    as numpy arrays (no torch) they equal those of the loaded model's state dict, bit for bit, and
    the κ=0 selections they make are the committed rows' (every state-dict key of the file is
    the model's, so the names the units read are pinned by the load itself)."""
    import numpy as np

    from sics.study.rows import read_rows

    study = prepare(committed, progress=False)
    from_file = study.unit.stats(study.selection.inputs)  # the committed arrays: the model is not built
    assert not study.trained.model_loaded
    state = study.model.state_dict()
    assert set(state) == set(weights.arrays(committed, json_record(committed)))
    from sics.units.base import UnitInputs

    from_model = study.unit.stats(UnitInputs(study.profile, model=study.model))
    for a, b in zip(from_file, from_model, strict=True):
        assert np.array_equal(a.m, b.m) and all(np.array_equal(a.extra[k], b.extra[k]) for k in a.extra)
    rows = read_rows(REPO / "figures" / committed / "sweep.csv")
    rows = rows[(rows["scorer"] == "magnitude") & (rows["tag"] == "main") & (rows["ckpt_id"] == study.trained.ckpt_id)]
    assert len(rows)
    for r in rows.itertuples():
        assert mask_hash(study.masks("magnitude", float(r.sparsity))[1]) == r.mask_hash, r.sparsity


def json_record(name: str) -> dict:
    import json

    return json.loads(weights.paths(name)[1].read_text())
