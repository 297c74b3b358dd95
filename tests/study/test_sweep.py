import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from sics.errors import ParameterError, SicsError
from sics.models import evaluate as evaluate_mod
from sics.models import fp32_decisions
from sics.models.evaluate import predict_correct
from sics.models.precision import autocast, precision
from sics.paths import cache_dir
from sics.selection.scorers import NINE, SCORERS, BlockStats, get_scorer, score_blocks
from sics.selection.select import score_and_select, select
from sics.study import sweep as sweep_mod
from sics.study.placement import Placement
from sics.study.results import pred_name
from sics.study.rows import read_rows
from sics.study.selection import StaleRowError
from sics.study.study import Study, prepare
from sics.study.sweep import run_sweep

S4 = [0.5, 0.6, 0.7, 0.8]


@pytest.fixture(scope="module")
def trained(tiny_tree, tmp_path_factory) -> tuple[Study, Path]:
    """One trained ci study per module (its checkpoint in a cache of its own)."""
    cache = tmp_path_factory.mktemp("study-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SICS_CACHE", str(cache))
        mp.setenv("SICS_FIGURES", str(tmp_path_factory.mktemp("study-figures")))
        return prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2), cache


@pytest.fixture
def study(trained, isolated_dirs) -> Study:
    """The module's study with empty in-memory caches; the test's own (empty) prediction cache
    and sweep.csv, and the module's checkpoint, so `prepare` with the same model only loads."""
    st, cache = trained
    (cache_dir() / "checkpoints").symlink_to(cache / "checkpoints", target_is_directory=True)
    return dataclasses.replace(st, _selection=None, _dense=None)


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

    def flaky(self, masks, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, masks, *args, **kwargs)

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
    evaluated = []
    real = evaluate_mod.predict_correct
    monkeypatch.setattr(evaluate_mod, "predict_correct", lambda *a, **k: evaluated.append(1) or real(*a, **k))
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
    a, b = study.selection.taylor(0), study.selection.taylor(1)
    assert len(a) == len(study.selection.stats) and a[0].shape == (study.profile.model.mlp_hidden,)
    assert (a[0] >= 0).all() and not np.allclose(a[0], b[0])
    assert all(np.array_equal(x, y) for x, y in zip(a, study.selection.taylor(0)))


def _bump_version(monkeypatch, name: str) -> None:
    """Pretend scorer `name` was fixed: its registered version goes to 2."""
    scorer = get_scorer(name)
    if "version" in {f.name for f in dataclasses.fields(scorer)}:
        monkeypatch.setitem(SCORERS, name, dataclasses.replace(scorer, version=2))
    else:  # the registry has no version field yet: patch the lookup the row key uses
        real = sweep_mod.scorer_version
        monkeypatch.setattr(sweep_mod, "scorer_version", lambda n: 2 if n == name else real(n))


def test_rows_are_recomputed_when_n_calib_or_a_scorer_version_changes(study, tiny_tree, monkeypatch):
    first = run_sweep(study, ["magnitude", "gradient"], [0.5], n_seeds=1)
    assert first["n_calib"].tolist() == [64, 64] and first["scorer_version"].tolist() == [1, 1]
    small = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2, n_calib=32)
    assert small.trained.ckpt_id == study.trained.ckpt_id and not small.trained.trained_now
    again = run_sweep(small, ["magnitude", "gradient"], [0.5], n_seeds=1)
    assert not set(again["key"]) & set(first["key"]) and again["n_calib"].tolist() == [32, 32]
    assert len(read_rows(study.sweep_path)) == 4

    _bump_version(monkeypatch, "gradient")
    fixed = run_sweep(study, ["magnitude", "gradient"], [0.5], n_seeds=1)
    assert len(read_rows(study.sweep_path)) == 5  # only the gradient row ran again
    by = fixed.set_index("scorer")
    assert by.loc["magnitude", "key"] in set(first["key"]) and by.loc["gradient", "scorer_version"] == 2


def test_a_stale_row_is_one_clear_error(study):
    rows = run_sweep(study, ["magnitude"], [0.6], n_seeds=1)
    row = next(rows.itertuples())
    study.results.path(pred_name(row.mask_hash, 0)).unlink()
    assert study.correct_for_row(row).mean() == row.accuracy  # recomputed, hash checked
    stale = next(rows.assign(mask_hash="0123456789ab").itertuples())
    with pytest.raises(StaleRowError, match="magnitude S=0.6 seed=0 .* is stale") as e:
        study.correct_for_row(stale)
    assert isinstance(e.value, SicsError) and "\n" not in str(e.value)


def test_the_prediction_cache_names_device_and_precision(study, monkeypatch):
    import sics.hardware

    assert study.results.path("abc").parent.name.endswith(f"-n40-{study.where.precision}-fp32d")
    monkeypatch.setattr(sics.hardware, "cpu_has_fast_bf16", lambda: False)  # a CPU without AMX
    assert precision(torch.device("cpu")) == "cpu-fp32"
    assert precision(torch.device("cuda")) == "cuda-bf16"  # naming only: no GPU needed
    assert Placement("cpu").precision == "cpu-fp32"  # the ci profile's `auto` on such a CPU


def test_bf16_evaluation_runs_in_bf16_with_a_cache_of_its_own(study, tiny_tree):
    assert precision(torch.device("cpu"), "bf16") == "cpu-bf16"
    assert precision(torch.device("cuda"), "fp32") == "cuda-fp32"
    with pytest.raises(ParameterError, match="unknown evaluation precision 'fp8'"):
        precision(torch.device("cpu"), "fp8")
    bf = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2, eval_precision="bf16",
                 fp32_decisions=False)  # fmt: skip
    assert bf.trained.ckpt_id == study.trained.ckpt_id and bf.where.precision == "cpu-bf16"
    assert bf.results.path("abc").parent.name.endswith("-cpu-bf16")
    x, _ = next(bf.test.batches(8))
    with torch.no_grad(), autocast(bf.device, "bf16"):
        assert bf.model(x).dtype == torch.bfloat16
        assert fp32_decisions(copy.deepcopy(bf.model))(x).dtype == torch.float32  # its head in fp32
    a, b = bf.dense_correct(), study.dense_correct()
    assert (a == b).mean() > 0.9  # near-ties may flip, nothing more


def test_dense_accuracy_is_measured_on_the_studys_own_test_set(study, tiny_tree, monkeypatch):
    # Same checkpoint, a smaller test set: the checkpoint's accuracy was measured on the other.
    small = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2, n_test=10)
    assert small.trained.ckpt_id == study.trained.ckpt_id
    truth = predict_correct(small.model, small.test).numpy()
    dense = small.dense_correct()
    assert dense.dtype == bool and np.array_equal(dense, truth)
    assert small.dense_accuracy == pytest.approx(truth.mean())
    calls = []
    monkeypatch.setattr(evaluate_mod, "predict_correct", lambda *a, **k: calls.append(1))
    again = prepare("ci", str(tiny_tree), device="cpu", progress=False, epochs=2, n_test=10)
    assert np.array_equal(again.dense_correct(), truth) and not calls  # from the cache


def test_damaged_cache_files_are_recomputed_with_a_warning(study, tiny_tree):
    rows = run_sweep(study, ["magnitude"], [0.7], n_seeds=1)
    row = next(rows.itertuples())
    path = study.results.path(pred_name(row.mask_hash, 0))
    good = np.load(path)
    path.write_bytes(path.read_bytes()[:20])  # EOF while reading the array header
    with pytest.warns(UserWarning, match="prediction cache .* is damaged"):
        assert np.array_equal(study.correct_for_row(row), good)
    assert np.array_equal(np.load(path), good)  # rewritten whole
    # the decoded data cache likewise
    from sics.data import load_cifar10

    load_cifar10(tiny_tree)
    (cached,) = (cache_dir() / "data").glob("cifar10-*.pt")
    cached.write_bytes(cached.read_bytes()[:100])
    with pytest.warns(UserWarning, match="data cache .* is damaged"):
        data = load_cifar10(tiny_tree)
    assert torch.equal(data.test_y, load_cifar10(tiny_tree).test_y)


def _blocks_of_different_scales() -> list[BlockStats]:
    """Four blocks whose magnitudes differ in scale, so magnitude's global counts differ."""
    rng = np.random.default_rng(0)
    out = []
    for i, scale in enumerate((0.8, 1.0, 1.15, 1.3)):
        m = rng.lognormal(0, 0.25, 128) * scale
        rank = np.empty(128, dtype=np.int64)
        rank[np.argsort(m)] = np.arange(128)
        out.append(BlockStats(i, m, rank, rng.random(128)))
    return out


def test_global_allocation_scores_all_channels_as_one_group():
    stats = _blocks_of_different_scales()
    for S in S4:
        for name in ("magnitude", "gradient"):  # raw-score rankings: unchanged by the pooling
            old = select(score_blocks(stats, name, S), S, "global")
            new = score_and_select(stats, name, S, allocation="global")[1]
            assert all(np.array_equal(a, b) for a, b in zip(old, new)), (name, S)
        mag = np.array([m.sum() for m in score_and_select(stats, "magnitude", S, allocation="global")[1]])
        for name in ("logistic_smooth", "tent_raw"):
            for seed in (0, 1):
                kept = score_and_select(stats, name, S, seed, allocation="global")[1]
                counts = np.array([m.sum() for m in kept])
                assert np.abs(counts - mag).max() <= 12, (name, S, seed, counts, mag)  # <= H/10
                # scoring blocks apart keeps ~k per block instead: off by 25+ channels here
                before = np.array([m.sum() for m in select(score_blocks(stats, name, S, seed), S, "global")])
                assert np.abs(before - mag).max() >= 25


def test_kappa_hat_of_a_global_row_reads_the_pooled_curve(study, monkeypatch):
    seen = []
    real = sweep_mod.kappa_hat
    monkeypatch.setattr(sweep_mod, "kappa_hat", lambda s, st: seen.append([b.H for b in st]) or real(s, st))
    rows = run_sweep(study, ["magnitude", "logistic_smooth"], [0.6], n_seeds=1, allocation="global")
    H = study.profile.model.mlp_hidden * study.profile.model.depth
    assert seen == [[H], [H]]
    assert rows.set_index("scorer")["kappa_hat"].to_dict() == {"magnitude": 0, "logistic_smooth": 1}


def test_a_sweep_hands_back_what_it_measured_without_reading_it_back(study, monkeypatch):
    from sics.analysis.summaries import result_key
    from sics.study.stage import load_correct
    from sics.study.sweep import sweep_grid

    rows, measured = sweep_grid(study, ["magnitude", "random"], [0.6], n_seeds=2)
    assert set(measured) == {result_key(r) for r in rows.itertuples()} and len(measured) == 3
    assert all(measured[result_key(r)].mean() == r.accuracy for r in rows.itertuples())

    def no_lookup(name):
        raise AssertionError(f"{name} was read back")

    monkeypatch.setattr(study.results, "lookup", no_lookup)
    again = load_correct(study, rows, measured)
    assert all(again[k] is measured[k] for k in measured)
    with pytest.raises(AssertionError, match="read back"):
        load_correct(study, rows)  # (without them, it looks them up)
