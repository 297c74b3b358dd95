"""Saved calibration statistics: a study's selections rebuild from its files alone, without data
or a forward pass, and a file of another model is ignored."""

from __future__ import annotations

import numpy as np
import pytest

from sics.paths import figures_dir
from sics.study.calibration import CalibrationStore
from sics.study.results import pack_results
from sics.study.rows import read_rows
from sics.study.study import prepare
from sics.study.sweep import run_sweep
from sics.training.checkpoints import export_weights


def no_data(study):
    """Fail if the study would load CIFAR-10 (and so could run a forward pass on it)."""

    def boom(*a, **k):
        raise AssertionError("the data were loaded")

    study.__class__ = type("NoData", (type(study),), {"data": property(boom)})
    return study


@pytest.mark.parametrize("unit", ["mlp_channels", "tokens"])
def test_gradient_selections_rebuild_from_the_saved_statistics_alone(tiny_tree, monkeypatch, tmp_path, unit):
    first = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=1)
    export_weights(first.trained, first.profile, first.data.source)
    study = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=1, unit=unit)
    rows = run_sweep(study, ["magnitude", "gradient"], [0.5, 0.7], n_seeds=2)
    study.save_calibration()
    pack_results(study)
    saved = sorted(p.name for p in figures_dir(study.name).glob("calibration-*.npz"))
    assert saved == [study.calibration.path.name] and saved[0].startswith(f"calibration-{study.unit.tag}-")
    before = (figures_dir(study.name) / saved[0]).read_bytes()

    monkeypatch.setenv("SICS_CACHE", str(tmp_path / "empty-cache"))  # no cached predictions either
    again = no_data(prepare("ci", None, device="cpu", progress=False, epochs=1, unit=unit))
    assert again.bundle is not None
    for r in read_rows(again.sweep_path).itertuples():
        again.selection.row_masks(r)  # raises StaleRowError if a selection differs
    assert (rows["scorer"] == "gradient").sum() >= 2
    again.save_calibration()  # nothing new: the file is left as it was
    assert (figures_dir(study.name) / saved[0]).read_bytes() == before


def test_a_file_of_another_model_is_ignored_and_new_statistics_are_merged(tmp_path):
    path = tmp_path / "calibration-x.npz"
    store = CalibrationStore(path, {"ckpt_id": "a"}, "cuda-bf16")
    store.get("taylor-s0", lambda: [np.arange(3.0), np.ones(2, dtype=np.float32)])
    assert store.save() == path and store.save() is None  # written once, then nothing new
    other = CalibrationStore(path, {"ckpt_id": "b"})
    assert other.get("taylor-s0", lambda: [np.zeros(1)])[0].tolist() == [0.0]
    same = CalibrationStore(path, {"ckpt_id": "a"}, "cpu-fp32")
    got = same.get("taylor-s0", lambda: pytest.fail("recomputed"))
    assert got[0].tolist() == [0, 1, 2] and got[1].dtype == np.float32
    same.get("taylor-s1", lambda: [np.full(2, 7.0)])
    same.save()
    merged = CalibrationStore(path, {"ckpt_id": "a"})
    assert sorted(merged.saved) == ["taylor-s0", "taylor-s1"] and merged.saved["taylor-s1"][0].tolist() == [7.0, 7.0]
    assert merged.made_in == {"taylor-s0": "cuda-bf16", "taylor-s1": "cpu-fp32"}  # each entry's own
