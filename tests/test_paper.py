"""`make paper`'s runner: errors are one line with a non-zero exit; both engines agree."""

import subprocess
import sys

import pandas as pd
import pytest

from sics.paper import NotebookFailed, main, run_papermill
from sics.paths import notebooks_dir


def test_unknown_profile_exits_non_zero_with_one_line(capsys):
    assert main(["--profile", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: unknown profile 'nope'; valid: paper, scratch, quick, ci, auto"


def test_missing_data_stops_the_first_notebook(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sics.paper", "--profile", "ci", "--only", "01", "--engine", "inline",
         "--data", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 01_finetune.ipynb failed in cell") and "does not exist" in last


def test_bad_notebook_parameters_name_the_bad_value(tiny_tree, tmp_path):
    src = notebooks_dir() / "05_bump_vs_chaos.ipynb"
    with pytest.raises(NotebookFailed, match=r"ParameterError: unknown scorer 'bumpy'; valid: magnitude"):
        run_papermill(src, tmp_path / "out.ipynb", dict(profile="ci", data=str(tiny_tree), scorers=["bumpy"]))
    with pytest.raises(NotebookFailed, match=r"sparsity 1.5 is outside \[0, 1\)"):
        run_papermill(src, tmp_path / "out.ipynb", dict(profile="ci", data=str(tiny_tree), sparsities=[0.5, 1.5]))
    with pytest.raises(NotebookFailed, match="the scorer list is empty; valid scorers"):
        run_papermill(src, tmp_path / "out.ipynb", dict(profile="ci", data=str(tiny_tree), scorers=[]))


def test_papermill_and_inline_engines_give_the_same_tables(tiny_tree, tmp_path, monkeypatch):
    outputs = {}
    for engine in ("papermill", "inline"):
        monkeypatch.setenv("SICS_FIGURES", str(tmp_path / engine))
        monkeypatch.setenv("SICS_CACHE", str(tmp_path / f"cache-{engine}"))
        assert main(["--profile", "ci", "--data", str(tiny_tree), "--only", "01,02", "--engine", engine]) == 0
        outputs[engine] = tmp_path / engine / "ci"
    for name in ("dense.csv", "table1.csv"):
        a = pd.read_csv(outputs["papermill"] / name)
        b = pd.read_csv(outputs["inline"] / name)
        pd.testing.assert_frame_equal(a, b)
    assert (outputs["inline"] / "training_curve.png").stat().st_size > 10_000
