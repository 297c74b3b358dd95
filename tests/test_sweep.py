import numpy as np
import pytest

from sics import sweep as sweep_mod
from sics.errors import ParameterError
from sics.scorers import NINE
from sics.sweep import Study, prepare, read_rows, run_sweep

S4 = [0.5, 0.6, 0.7, 0.8]


@pytest.fixture
def study(tiny_tree) -> Study:
    return prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2)


def test_sweep_rows_have_the_protocol_columns_and_the_plateau(study):
    rows = run_sweep(study, [*NINE, "gradient", "random", "bump"], S4, n_seeds=2)
    for col in ("scorer", "kappa", "sparsity", "seed", "accuracy", "mask_hash", "overlap_magnitude",
                "n_test", "profile", "ckpt_id", "data", "seconds", "kappa_hat"):
        assert col in rows.columns
    assert rows["accuracy"].between(0, 1).all()
    assert set(rows["kappa"]) == {"0", "1", "2", "control", "baseline"}
    for S in S4:
        at = rows[rows["sparsity"] == S]
        assert set(NINE) <= set(at["scorer"])
        k0 = at[at["kappa"] == "0"]
        assert k0["mask_hash"].nunique() == 1 and k0["accuracy"].nunique() == 1
        mag = k0["mask_hash"].iloc[0]
        for name in [n for n in NINE if n not in k0["scorer"].tolist()]:
            assert (at[at["scorer"] == name]["mask_hash"] != mag).all(), (name, S)
    # stochastic scorers over seeds, deterministic ones once
    assert (rows[rows["scorer"] == "tent_raw"].groupby("sparsity").size() == 2).all()
    assert (rows[rows["scorer"] == "magnitude"].groupby("sparsity").size() == 1).all()
    on_disk = read_rows(study.sweep_path)
    assert len(on_disk) == len(rows)


def test_finished_rows_are_never_recomputed(study, monkeypatch):
    first = run_sweep(study, ["magnitude", "tent_raw"], [0.5, 0.7], n_seeds=2)

    def boom(*a, **k):
        raise AssertionError("recomputed a finished row")

    monkeypatch.setattr(sweep_mod.Study, "masks", boom)
    again = run_sweep(study, ["magnitude", "tent_raw"], [0.5, 0.7], n_seeds=2)
    assert again[["key", "accuracy"]].equals(first[["key", "accuracy"]])


def test_an_interrupted_sweep_resumes_where_it_stopped(study, monkeypatch):
    real = sweep_mod.Study.correct
    calls = []

    def flaky(self, masks, recovery_steps=0):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, masks, recovery_steps)

    monkeypatch.setattr(sweep_mod.Study, "correct", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(study, ["random"], [0.5, 0.6], n_seeds=2)
    assert len(read_rows(study.sweep_path)) == 2  # the two finished rows were written
    monkeypatch.setattr(sweep_mod.Study, "correct", real)
    computed = []
    monkeypatch.setattr(sweep_mod, "kappa_hat", lambda s, st: computed.append(1) or (2, 0.9))
    rows = run_sweep(study, ["random"], [0.5, 0.6], n_seeds=2)
    assert len(rows) == 4 and len(computed) == 2  # only the two missing rows ran


def test_identical_masks_are_evaluated_once(study, monkeypatch):
    from sics import sweep

    evaluated = []
    real = sweep.predict_correct
    monkeypatch.setattr(sweep, "predict_correct", lambda *a, **k: evaluated.append(1) or real(*a, **k))
    run_sweep(study, ["magnitude", "magnitude_sq", "log_magnitude"], [0.6], n_seeds=1)
    assert len(evaluated) == 1


def test_bad_parameters_name_the_bad_value(study):
    with pytest.raises(ParameterError, match="unknown scorer 'magnitud'; valid: magnitude"):
        run_sweep(study, ["magnitud"], [0.5])
    with pytest.raises(ParameterError, match="sparsity 1.2 is outside"):
        run_sweep(study, ["magnitude"], [0.5, 1.2])
    with pytest.raises(ParameterError, match="scorer list is empty"):
        run_sweep(study, [], [0.5])
    with pytest.raises(ParameterError, match="sparsity list is empty"):
        run_sweep(study, ["magnitude"], [])


def test_gradient_scores_come_from_the_calibration_seed(study):
    a, b = study.taylor(0), study.taylor(1)
    assert len(a) == len(study.stats) and a[0].shape == (study.profile.mlp_hidden,)
    assert (a[0] >= 0).all() and not np.allclose(a[0], b[0])
    assert all(np.array_equal(x, y) for x, y in zip(a, study.taylor(0)))
