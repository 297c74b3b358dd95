"""`make paper`'s runner: errors are one line with a non-zero exit; both engines agree."""

import json
import re
import subprocess
import sys

import pandas as pd
import pytest

from sics.cli.paper import (
    Forward,
    NotebookFailed,
    main,
    notebook_environment,
    run_inline,
    run_papermill,
)
from sics.config import PROFILES
from sics.paths import notebooks_dir


def test_unknown_profile_exits_non_zero_with_one_line(capsys):
    assert main(["--profile", "nope"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: unknown profile 'nope'; valid: {', '.join(PROFILES)}, auto"


@pytest.mark.parametrize(("argv", "says"), [
    (["--only", "42"], "error: --only 42: no notebook 42; valid: 01, 02"),
    (["--only", "02", "--set", "n_seeds=abc"], "error: --set n_seeds='abc': n_seeds is a number (default 0)"),
    (["--only", "02", "--set", "sparsities=2.0"], "error: --set sparsities=2.0: sparsities is a list"),
    (["--only", "02", "--set", "n_seeds=2.5"], "error: --set n_seeds=2.5: n_seeds is a number"),
    (["--only", "02", "--set", "arch=resnet"], "error: --set arch: no chosen notebook has a parameter 'arch'"),
    (["--only", "02", "--set", "sparsities=[0.5, 2.0]"], "error: --set sparsities=[0.5, 2.0]: sparsities must be a list of sparsities in [0, 1)"),
    (["--only", "02", "--set", "n_seeds=-3"], "error: --set n_seeds=-3: n_seeds must be a whole number >= 0"),
    (["--only", "02", "--set", "scorers=['magnitude', 'bumpy']"], "error: --set scorers=['magnitude', 'bumpy']: scorers must be a list of registered scorers"),
    (["--only", "06", "--set", "ablations=['depth']"], "error: --set ablations=['depth']: ablations must be a list of ablations: allocation"),
    (["--only", "07", "--set", "importances=[]"], "error: --set importances=[]: importances must be a non-empty list of token importances"),
    (["--only", "08", "--set", "arch=vgg"], "error: --set arch='vgg': arch must be an architecture beside the ViT"),
    (["--only", "06", "--set", "equivalence_margin=0"], "error: --set equivalence_margin=0: equivalence_margin must be a margin in points, > 0"),
    (["--set", "nope=1"], "error: --set nope: no chosen notebook has a parameter 'nope'"),
])  # fmt: skip
def test_bad_selections_and_parameters_stop_before_any_notebook_runs(argv, says, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SICS_FIGURES", str(tmp_path))
    assert main(["--profile", "ci", *argv]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(says) and "\n" not in err
    assert not any(tmp_path.iterdir())  # nothing ran, nothing written


@pytest.mark.parametrize(("var", "value", "says"), [
    ("SICS_EXECUTOR", "cloud", "error: EXECUTOR='cloud': must be inline, local or slurm"),
    ("SICS_CHUNK", "0", "error: CHUNK='0': must be a whole number of rows per job, >= 1"),
    ("SICS_SLURM_TIME", "1h", "error: SLURM_TIME='1h': must be a whole number of minutes"),
    ("SICS_SLURM_GPUS", "-1", "error: SLURM_GPUS='-1': must be a whole number of GPUs"),
    ("SICS_SLURM_CPUS", "0", "error: SLURM_CPUS='0': must be a whole number of CPUs, >= 1"),
])  # fmt: skip
def test_bad_executor_settings_stop_before_any_notebook_runs(var, value, says, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SICS_FIGURES", str(tmp_path))
    monkeypatch.setenv(var, value)
    assert main(["--profile", "ci", "--only", "02"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(says) and "\n" not in err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(("command", "argv", "says"), [
    ("paper", ["--engine", "jupyter"], "error: argument --engine: invalid choice: 'jupyter'"),
    ("verify", ["--n", "abc"], "error: argument --n: 'abc' is not a whole number >= 1"),
    ("verify", ["--n", "0"], "error: argument --n: '0' is not a whole number >= 1"),
    ("verify", ["--run", "-1"], "error: argument --run: '-1' is not a whole number >= 0"),
    ("verify", ["--precision", "fp8"], "error: argument --precision: invalid choice: 'fp8'"),
    ("verify", ["--unit", "heads"], "error: unknown unit 'heads'; valid: mlp_channels"),
    ("verify", ["--profile", "nope"], "error: unknown profile 'nope'"),
])  # fmt: skip
def test_bad_make_variables_are_one_line_before_anything_runs(command, argv, says, capsys, tmp_path, monkeypatch):
    """ENGINE (make paper); N, RUN, PRECISION, UNIT, PROFILE (make verify)."""
    import importlib

    monkeypatch.setenv("SICS_FIGURES", str(tmp_path))
    try:
        code = importlib.import_module(f"sics.cli.{command}").main(["--profile", "ci", *argv] if "--profile" not in argv else argv)
    except SystemExit as e:
        code = e.code
    assert code in (1, 2)
    err = capsys.readouterr().err.strip()
    assert err.startswith(says) and "\n" not in err
    assert not any(tmp_path.iterdir())


@pytest.mark.e2e  # a subprocess or notebook run
def test_missing_data_stops_the_first_notebook(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sics.cli.paper", "--profile", "ci", "--only", "01", "--engine", "inline",
         "--data", str(tmp_path / "nowhere")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: 01_finetune.ipynb failed in cell") and "does not exist" in last


@pytest.mark.e2e  # a subprocess or notebook run
def test_bad_notebook_parameters_name_the_bad_value(tiny_tree, tmp_path):
    """Through papermill once (its error reaches the terminal as one line), then inline (the
    same cells: a kernel start saved per case)."""
    src = notebooks_dir() / "05_bump_vs_chaos.ipynb"
    with pytest.raises(NotebookFailed, match=r"ParameterError: unknown scorer 'bumpy'; valid: magnitude"):
        run_papermill(src, tmp_path / "out.ipynb", dict(profile="ci", data=str(tiny_tree), scorers=["bumpy"]))
    with pytest.raises(NotebookFailed, match=r"sparsity 1.5 is outside \[0, 1\)"):
        run_inline(src, dict(profile="ci", data=str(tiny_tree), sparsities=[0.5, 1.5]))
    with pytest.raises(NotebookFailed, match="the scorer list is empty; valid scorers"):
        run_inline(src, dict(profile="ci", data=str(tiny_tree), scorers=[]))


@pytest.mark.e2e  # a subprocess or notebook run
def test_papermill_and_inline_engines_give_the_same_tables(tiny_tree, tmp_path, monkeypatch, capfd):
    """...and both show the same progress and summaries on the terminal, without noise."""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("SICS_PROGRESS", raising=False)
    monkeypatch.delenv("PYTHONWARNINGS", raising=False)
    outputs = {}
    for engine in ("papermill", "inline"):
        monkeypatch.setenv("SICS_FIGURES", str(tmp_path / engine))
        monkeypatch.setenv("SICS_CACHE", str(tmp_path / f"cache-{engine}"))
        assert main(["--profile", "ci", "--data", str(tiny_tree), "--only", "01,02", "--engine", engine]) == 0
        outputs[engine] = tmp_path / engine / "ci"
        out, err = capfd.readouterr()  # the kernel's own stderr too (a file descriptor it inherits)
        assert re.search(r"\[sics\] train ci: epoch 1/\d+, loss [\d.]+, test accuracy [\d.]+%", err), err
        assert re.search(r"train ci: 100%.*\d+/\d+ \[", err) and re.search(r"sweep main: 100%.*row", err), err
        assert "Warning" not in err and "IPKernelApp" not in err and "Kernel" not in err, err
        lines = out.splitlines()
        assert all(line.startswith("[sics]") for line in lines), out  # progress and summaries only
        for name in ("01_finetune", "02_plateau"):
            assert any(re.match(rf"\[sics\] {name}: done in \d+ s \(profile ci.*; \d+ s in all$", line)
                       for line in lines), out  # fmt: skip
    for name in ("dense.csv", "table1.csv"):
        a = pd.read_csv(outputs["papermill"] / name)
        b = pd.read_csv(outputs["inline"] / name)
        pd.testing.assert_frame_equal(a, b)
    assert (outputs["inline"] / "training_curve.png").stat().st_size > 10_000
    stages = json.loads((outputs["inline"] / "provenance.json").read_text())["stages"]
    assert not any(s.startswith("make_paper") for s in stages)  # a partial run's timing is not committed
    last = json.loads((outputs["inline"] / "notebooks" / "last_run.json").read_text())["stages"]
    assert set(last["make_paper --only 01,02"]["seconds_per_notebook"]) == {"01_finetune", "02_plateau"}
    swept = pd.read_csv(outputs["inline"] / "sweep.csv")
    counts = swept.groupby(["scorer", "tag", "allocation", "sparsity"])["seed"].nunique()
    assert stages["02_plateau"]["seeds_per_cell"] == sorted(set(counts)) and max(counts) == PROFILES["ci"].n_seeds


def test_the_terminal_gets_the_sics_lines_and_the_summary_with_the_time_in_all(capsys):
    import sys as _sys

    out = Forward(_sys.stdout)
    out.write("a caption\n[sics] train ci: epoch 1/2")
    out.write(", loss 2.2\n| table | row |\n[sics] 01_finetune: done in 3 s (profile ci)\n")
    assert capsys.readouterr().out == "[sics] train ci: epoch 1/2, loss 2.2\n"
    assert out.summary == "[sics] 01_finetune: done in 3 s (profile ci)"
    verbose = Forward(_sys.stdout, verbose=True)
    verbose.write("a caption\n[sics] x: done in 1 s\n")
    assert capsys.readouterr().out == "a caption\n"


@pytest.mark.parametrize("env, progress", [({}, "text"), ({"CI": "1"}, None), ({"SICS_PROGRESS": "0"}, "0")])
def test_notebooks_get_text_progress_unless_it_is_off(monkeypatch, env, progress):
    import os

    for k in ("CI", "SICS_PROGRESS", "PYTHONWARNINGS"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with notebook_environment():
        assert os.environ.get("SICS_PROGRESS") == progress
        assert "ignore::DeprecationWarning" in os.environ["PYTHONWARNINGS"]
    assert os.environ.get("SICS_PROGRESS") == env.get("SICS_PROGRESS")  # restored
    assert "PYTHONWARNINGS" not in os.environ


def test_a_notebook_runs_once_per_parameter_set_unless_one_is_set(monkeypatch):
    from sics.cli import paper
    from sics.cli.paper import runs_of

    monkeypatch.setitem(paper.RUNS, "09_criteria", ({}, {"arch": "resnet"}))

    assert runs_of("09_criteria", {}) == [("09_criteria", {}), ("09_criteria-resnet", {"arch": "resnet"})]
    # a --set of the parameter runs it once, as set, and the copy's name still says which
    assert runs_of("09_criteria", {"arch": "resnet"}) == [("09_criteria-resnet", {"arch": "resnet"})]
    assert runs_of("09_criteria", {"arch": ""}) == [("09_criteria", {"arch": ""})]
    assert runs_of("09_criteria", {"arch": "../x"}) == [("09_criteria-___x", {"arch": "../x"})]
    assert runs_of("09_criteria", {"n_seeds": 20}) == runs_of("09_criteria", {})
    assert runs_of("06_claims", {"arch": "resnet"}) == [("06_claims", {})]


def test_the_moe_notebook_runs_once_per_committed_training_run(tmp_path, monkeypatch):
    from sics.cli.paper import runs_of

    monkeypatch.setenv("SICS_FIGURES", str(tmp_path))
    for k in (1, 3):
        (tmp_path / "reference-experts" / "runs" / str(k)).mkdir(parents=True)
        (tmp_path / "reference-experts" / "runs" / str(k) / "results.zip").touch()
    (tmp_path / "reference-experts" / "runs" / "2").mkdir()  # a run whose study is not committed
    assert runs_of("12_moe", {}, "reference") == [("12_moe", {}), ("12_moe-1", {"run": 1}), ("12_moe-3", {"run": 3})]
    assert runs_of("12_moe", {}, "ci") == [("12_moe", {})]
    assert runs_of("12_moe", {"run": 3}, "reference") == [("12_moe-3", {"run": 3})]
