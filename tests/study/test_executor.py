"""Sweeps through submitit's local executor: the same rows as in-process, and a job killed midway
loses only its unfinished rows."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from sics.errors import ParameterError
from sics.study.rows import parts_dir, read_rows
from sics.study.study import prepare
from sics.study.sweep import run_sweep

pytest.importorskip("submitit")
SCORERS, SPARSITIES = ["magnitude", "random", "logistic_raw"], [0.5, 0.7]


def sweep(tiny_tree, figures, monkeypatch, **env) -> tuple:
    monkeypatch.setenv("SICS_FIGURES", str(figures))
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    study = prepare("ci", str(tiny_tree), device="cpu", progress=False)
    return study, run_sweep(study, SCORERS, SPARSITIES, n_seeds=2)


def same_rows(a, b) -> bool:
    cols = ["key", "accuracy", "mask_hash", "scorer", "sparsity", "seed"]
    return a[cols].sort_values("key").reset_index(drop=True).equals(b[cols].sort_values("key").reset_index(drop=True))


@pytest.mark.e2e  # a subprocess or notebook run
def test_a_local_executor_sweep_gives_the_in_process_rows_and_resumes_a_killed_job(tiny_tree, tmp_path,
                                                                                 monkeypatch, isolated_dirs):  # fmt: skip
    _, inline = sweep(tiny_tree, tmp_path / "inline", monkeypatch)
    assert len(inline) == 2 + 2 * 2 * 2  # magnitude once per S, the stochastic two twice
    shutil.rmtree(isolated_dirs / "cache" / "preds")  # the jobs evaluate for themselves
    with pytest.raises(ParameterError, match="sweep jobs failed"):  # the first job dies after one row
        sweep(tiny_tree, tmp_path / "killed", monkeypatch, SICS_EXECUTOR="local", SICS_CHUNK="5",
              SICS_JOB_STOP_AFTER="1")  # fmt: skip
    path = tmp_path / "killed" / "ci" / "sweep.csv"
    survived = read_rows(path)
    assert 1 <= len(survived) < len(inline)  # its finished row, and the other jobs' rows, are kept
    monkeypatch.delenv("SICS_JOB_STOP_AFTER")
    study, rerun = sweep(tiny_tree, tmp_path / "killed", monkeypatch, SICS_EXECUTOR="local", SICS_CHUNK="5")
    assert same_rows(inline, rerun)  # keys, accuracies and mask hashes of the in-process run
    assert not any(parts_dir(study.sweep_path).glob("*.csv"))  # every part merged
    written = pd.read_csv(path)["key"]  # every line, as written (read_rows would drop a repeat)
    assert len(written) == len(inline) and written.is_unique  # no row computed twice
