"""The committed results bundle: every output regenerates from it without the data or a forward
pass, new evaluations without data are one clear line, and `verify` re-measures it exactly."""

import shutil

import numpy as np
import pandas as pd
import pytest
import torch

from sics import provenance
from sics.cli import verify as verify_mod
from sics.cli.verify import bundle_precision, check_sample, choose_precision, rule, verify
from sics.errors import DataError
from sics.models import evaluate as evaluate_mod
from sics.study import bundle
from sics.study import results as study_mod
from sics.study.bundle import BundleError
from sics.study.results import pack_results
from sics.study.rows import read_rows
from sics.study.stage import Results, load_correct
from sics.study.study import prepare
from sics.study.sweep import run_sweep
from sics.training.checkpoints import export_weights

SCORERS = ["magnitude", "logistic_smooth", "gradient", "random"]
S2 = [0.5, 0.8]


@pytest.fixture(scope="module")
def committed(tiny_tree, tmp_path_factory):
    """A ci study of committed weights, swept and packed as a profile's committed files are."""
    base = tmp_path_factory.mktemp("committed")
    env = dict(SICS_CACHE=str(base / "cache"), SICS_FIGURES=str(base / "figures"))
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        first = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2)
        export_weights(first.trained, first.profile, first.data.source)
        study = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2)
        assert study.trained.weights_sha256 and not study.trained.trained_now
        rows = run_sweep(study, SCORERS, S2, n_seeds=2)
        summary = Results(rows, load_correct(study, rows)).summary()
        no_mlp = study.units_removed_accuracy
        assert study.dense_accuracy > no_mlp  # (measured, as every notebook does on opening)
        assert pack_results(study) == bundle.path("ci")
    return base, study, rows, summary, no_mlp


@pytest.fixture
def figures(committed, monkeypatch, tmp_path):
    """A copy of the committed figures folder, and an empty prediction cache."""
    base = committed[0]
    shutil.copytree(base / "figures", tmp_path / "figures")
    monkeypatch.setenv("SICS_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("SICS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "figures"


def no_forward(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("a forward pass was run")

    monkeypatch.setattr(evaluate_mod, "predict_correct", boom)


def test_bits_round_trip_exactly_and_the_file_is_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("SICS_FIGURES", str(tmp_path))
    rng = np.random.default_rng(0)
    entries = {f"{i:012x}-r0": rng.random(1003) < 0.7 for i in range(5)}
    meta = dict(n_test=1003, ckpt_id="x")
    first = bundle.write("p", meta, entries).read_bytes()
    back = bundle.load("p")
    assert set(back.bits) == set(entries)
    assert all(np.array_equal(back.get(k), v) for k, v in entries.items())
    assert back.get("missing-r0") is None and len(back.bits["000000000000-r0"]) == 126
    assert bundle.write("p", meta, dict(reversed(entries.items()))).read_bytes() == first


def test_a_damaged_bundle_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("SICS_FIGURES", str(tmp_path))
    bundle.write("p", dict(n_test=16, ckpt_id="x"), {"a-r0": np.ones(16, dtype=bool)})
    path = bundle.path("p")
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(BundleError, match="is damaged .*git checkout") as e:
        bundle.load("p")
    assert "\n" not in str(e.value)


def test_every_output_regenerates_without_data_or_a_forward_pass(committed, figures, tmp_path, monkeypatch):
    _, study, rows, summary, no_mlp = committed
    no_forward(monkeypatch)
    offline = prepare("ci", str(tmp_path / "no-such-data"), device="cpu", progress=False, epochs=2)
    assert offline.bundle is not None and offline.trained.weights_sha256 == study.trained.weights_sha256
    again = run_sweep(offline, SCORERS, S2, n_seeds=2)
    assert again[["key", "accuracy"]].equals(rows[["key", "accuracy"]])
    regenerated = Results(again, load_correct(offline, again)).summary()
    pd.testing.assert_frame_equal(regenerated, summary)
    assert offline.dense_accuracy == study.dense_accuracy and offline.units_removed_accuracy == no_mlp
    assert (offline.n_test, offline.inputs.source) == (study.n_test, study.data.source)
    assert not offline.inputs.loaded
    before = bundle.path("ci").read_bytes()
    pack_results(offline)  # nothing new: the committed file stays byte-identical
    assert bundle.path("ci").read_bytes() == before


def test_a_new_evaluation_without_data_says_so_in_one_line(committed, figures, tmp_path):
    offline = prepare("ci", str(tmp_path / "no-such-data"), device="cpu", progress=False, epochs=2)
    with pytest.raises(DataError, match="does not exist.*the committed bundle does not hold") as e:
        run_sweep(offline, ["tent_raw"], [0.6], n_seeds=1)
    assert "\n" not in str(e.value)


def test_new_evaluations_on_other_data_are_refused(committed, figures, tiny_archive):
    other = prepare("ci", str(tiny_archive), device="cpu", progress=False, epochs=2)
    assert other.bundle is not None  # same committed weights: the bundle applies to them
    with pytest.raises(DataError, match="were measured on .* is different data"):
        run_sweep(other, ["tent_raw"], [0.6], n_seeds=1)


def test_new_rows_are_added_to_the_bundle(committed, figures, tiny_tree):
    study = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2)
    n = len(study.bundle)
    rows = run_sweep(study, ["tent_raw"], [0.6], n_seeds=1)
    pack_results(study)
    assert len(bundle.load("ci")) == n + 1
    assert bundle.load("ci").get(f"{rows['mask_hash'].iloc[0]}-r0").mean() == rows["accuracy"].iloc[0]


def test_verify_agrees_exactly_here_and_catches_a_changed_result(committed, figures, tiny_tree):
    study = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2)
    table, ok = verify(study, n=4, seed=1)
    assert ok and len(table) == 5 and (table["images_differing"] == 0).all()
    assert table["scorer"].iloc[0] == "dense"
    # flip image 0 of every entry: every re-measured result now disagrees by one image
    b = bundle.load("ci")
    first = np.arange(b.n_test) == 0
    bundle.write("ci", b.meta, {k: b.get(k) ^ first for k in b.bits})
    study = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2)
    table, ok = verify(study, n=4, seed=1)
    assert not ok and (table["images_differing"] == 1).all()


def test_the_bundle_records_this_machines_fingerprint_and_exactness_is_demanded_only_there(
        committed, figures, tiny_tree, monkeypatch):  # fmt: skip
    study = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2)
    here = provenance.fingerprint(study.device, study.where.precision)
    assert study.bundle.meta["fingerprints"] == [here]  # measured here when the fixture packed it
    assert rule(study)[1] == 0.0
    # one image of every result flipped, as a near tie may flip on another CPU
    b = bundle.load("ci")
    first = np.arange(b.n_test) == 0
    bundle.write("ci", b.meta, {k: b.get(k) ^ first for k in b.bits})
    monkeypatch.setattr(verify_mod, "MACHINE_TOLERANCE", 2 / b.n_test)  # room for one flip
    study = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2)
    table, ok = verify(study, n=2, seed=1)
    assert not ok and (table["images_differing"] == 1).all()  # this machine made it: exact
    other = {**here, "cpu": "Some Other CPU", "isa": ["avx2", "fma"]}
    monkeypatch.setattr(provenance, "fingerprint", lambda device, precision, emulated=False: other)
    how, limit = rule(study)
    assert how.startswith("another machine") and limit == 2 / b.n_test
    table, ok = verify(study, n=2, seed=1)
    assert ok and (table["images_differing"] == 1).all()  # within the tolerance, not exact
    bundle.write("ci", b.meta, {k: b.get(k) ^ (np.arange(b.n_test) < 3) for k in b.bits})
    study = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2)
    assert not verify(study, n=2, seed=1)[1]  # three flips are past it


def test_verify_picks_fp32_for_a_bf16_bundle_where_bf16_is_slow_and_widens_the_tolerance(
        committed, figures, tiny_tree, monkeypatch):  # fmt: skip
    study = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2)
    b = bundle.load("ci")
    meta = {**b.meta, "fingerprints": [{**fp, "precision": "cpu-bf16"} for fp in b.meta["fingerprints"]],
            "measured_on": [m.replace("cpu-fp32", "cpu-bf16") for m in b.meta["measured_on"]]}
    bundle.write("ci", meta, {k: b.get(k) for k in b.bits})
    study = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2)
    assert bundle_precision(study) == "bf16"
    monkeypatch.setattr(verify_mod, "cpu_has_fast_bf16", lambda: False)
    assert choose_precision(study) == "fp32" and choose_precision(study, "bf16") == "bf16"
    monkeypatch.setattr(verify_mod, "cpu_has_fast_bf16", lambda: True)
    assert choose_precision(study) == "bf16"
    fp32 = prepare(study.profile.replace(eval_precision="fp32"), str(tiny_tree), device="cpu", progress=False)
    how, limit = rule(fp32)
    assert how.startswith("another precision") and limit == verify_mod.PRECISION_TOLERANCE


def test_a_damaged_sample_of_the_dense_model_is_caught_by_the_quick_check(committed, figures, tiny_tree):
    study = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2)
    differ, checked, tolerance = check_sample(study, 20)
    assert checked == 20 and differ == 0 and tolerance == 0.0
    with torch.no_grad():  # a broken load: the head's weights lost, every image one class
        study.model.head.weight.zero_()
    differ, checked, tolerance = check_sample(study, 20)
    assert differ > tolerance * checked


def test_the_bundle_of_committed_weights_is_not_overwritten_by_a_retrained_model(committed, figures, tiny_tree,
                                                                                monkeypatch):  # fmt: skip
    before = bundle.path("ci").read_bytes()
    monkeypatch.setenv("SICS_RETRAIN", "1")
    retrained = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2)
    assert retrained.trained.weights_sha256 is None and retrained.bundle is None
    run_sweep(retrained, ["magnitude"], [0.5], n_seeds=1)
    assert pack_results(retrained) is None and bundle.path("ci").read_bytes() == before
    assert len(read_rows(retrained.sweep_path)) > 0


def test_newly_committed_weights_replace_the_bundle_of_the_weights_before_them(committed, figures, tiny_tree):
    from sics.training import weights

    for f in weights.paths("ci"):
        f.unlink()  # the maintainer moves the old weights away, retrains and commits the new ones
    first = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=3)
    export_weights(first.trained, first.profile, first.data.source)
    study = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=3)
    assert study.trained.weights_sha256 and study.bundle is None  # the old bundle is of other weights
    rows = run_sweep(study, ["magnitude"], [0.5], n_seeds=1)
    assert pack_results(study) == bundle.path("ci")
    packed = bundle.load("ci")
    assert packed.meta["weights_sha256"] == study.trained.weights_sha256 and packed.ckpt_id == study.trained.ckpt_id
    assert set(packed.bits) == {study_mod.pred_name(rows["mask_hash"].iloc[0], 0, 0)}  # the new model's one result
