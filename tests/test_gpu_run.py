"""The GPU reference run, dry on this CPU (ci profile, tiny data, a stub nvidia-smi; see the
`gpu_dry_run` fixture): what comes back is complete, within the limits, survives a TERM, and
regenerates and verifies here without training."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from sics import bundle, ship, verify
from sics.paper import NOTEBOOKS
from sics.paper import main as paper
from sics.sweep import pred_name, read_rows

TABLES = ("dense", "table1", "table2", "table3", "table4", "table5", "claims", "phase")


def manifest(folder) -> dict:
    return json.loads((folder / ship.MANIFEST).read_text())


def stages(folder) -> pd.DataFrame:
    return pd.read_csv(folder / "stages.tsv", sep="\t", dtype=str)


def check_files(folder) -> dict:
    """Every file the manifest lists is there, under the limit, with its sha256."""
    m = manifest(folder)
    for rel, f in m["files"].items():
        path = folder / "figures" / rel
        assert path.stat().st_size == f["bytes"] <= ship.LIMIT_BYTES and ship.sha256(path) == f["sha256"], rel
    assert not m["left_out"]
    return m["files"]


def test_gpu_run_stopped_by_term_midway_returns_what_had_finished(gpu_dry_run):
    out = gpu_dry_run["killed"]
    assert gpu_dry_run["killed_rc"] == 143
    files = check_files(out)
    shards = [f for f in files if f.startswith("ci/weights-")]
    assert len(shards) >= 2 and "ci/weights.json" in files  # the model, as bf16 shards
    assert {"ci/dense.csv", "ci/training_curve.png", "ci/results.zip"} <= set(files)  # notebook 01
    st = stages(out)
    done = st[st["status"] == "0"]["stage"].tolist()
    stopped = st[st["status"] == "interrupted"]["stage"].tolist()
    assert done[:2] == ["train", "01_finetune"] and done[1:] == list(NOTEBOOKS[: len(done) - 1])
    assert stopped[0] == NOTEBOOKS[len(done) - 1] and "interrupted (TERM)" in (out / "run.log").read_text()
    # every sweep row that had finished came back with its per-image result
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SICS_FIGURES", str(out / "figures"))
        found = bundle.load("ci")
        rows = read_rows(out / "figures" / "ci" / "sweep.csv")
    rows = rows[rows["ckpt_id"] == found.ckpt_id]
    assert all(pred_name(r.mask_hash, int(r.recovery_steps), int(r.seed)) in found for r in rows.itertuples())


def test_gpu_run_to_completion_returns_every_output_folder_and_the_shards(gpu_dry_run):
    out = gpu_dry_run["complete"]
    assert gpu_dry_run["complete_rc"] == 0, gpu_dry_run["log"][-3000:]
    files = check_files(out)
    st = stages(out).set_index("stage")["status"]
    assert (st == "0").all() and {"notebooks", "bench", "08_architectures"} <= set(st.index), st
    assert "train" not in st.index  # the weights of the stopped run were there: not trained again
    for t in TABLES:
        for ext in ("csv", "md", "tex"):
            assert f"ci/{t}.{ext}" in files
    assert {"ci-tokens/table2.csv", "ci-tokens/results.zip", "ci/sweep.csv", "ci-tokens/sweep.csv"} <= set(files)
    assert {"ci/calibration-mlp_channels.npz", "ci-tokens/calibration-tokens-b-1-cls_attention.npz"} <= set(files)
    assert {"ci_resnet/fig_units_ci.png", "ci_resnet/fig_units_ci.pdf"} <= set(files)
    assert not any(f.startswith("ci_resnet/") and "fig_units" not in f for f in files)  # only what ci drew there
    assert "Stub GPU" in (out / "gpu.txt").read_text() and json.loads((out / "bench.json").read_text())
    meta = json.loads((out / "figures" / "ci" / "weights.json").read_text())
    assert meta["dtype"] == "bf16" and meta["ckpt_id"].endswith("-bf16") and 0 <= meta["test_accuracy"] <= 1


@pytest.fixture(scope="module")
def restored(gpu_dry_run, tmp_path_factory):
    """What came back, restored into an empty figures folder, then regenerated with no data and
    an empty cache (notebooks 01-07; 08 studies the committed ResNet, which is not shipped)."""
    base = tmp_path_factory.mktemp("restored")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SICS_FIGURES", str(base / "figures"))
        mp.setenv("SICS_CACHE", str(base / "cache"))
        mp.delenv("SICS_DATA", raising=False)
        names = ship.restore(gpu_dry_run["complete"])
        assert paper(["--profile", "ci", "--engine", "inline", "--only", "01,02,03,04,05,06,07"]) == 0
    return base / "figures", names


def test_a_cpu_regenerates_the_gpu_run_from_what_came_back_byte_for_byte(gpu_dry_run, restored):
    root, names = restored
    came_back = gpu_dry_run["complete"] / "figures"
    differ = [n for n in names if (root / n).read_bytes() != (came_back / n).read_bytes()]
    assert differ == ["ci/provenance.json"], differ  # which gains this partial run's record, and only that:
    now, then = (json.loads((r / "ci" / "provenance.json").read_text()) for r in (root, came_back))
    assert now["stages"].pop("make_paper --only 01,02,03,04,05,06,07")["engine"] == "inline"
    assert {k: v for k, v in now.items() if k != "updated"} == {k: v for k, v in then.items() if k != "updated"}
    assert not (root / "ci" / "weights.safetensors").exists()  # nothing was trained


def test_a_cpu_verifies_the_gpu_run_from_what_came_back(gpu_dry_run, restored, tiny_archive, monkeypatch, capsys):
    root, _ = restored
    monkeypatch.setenv("SICS_FIGURES", str(root))
    assert verify.main(["--profile", "ci", "--data", str(tiny_archive), "--n", "6"]) == 0
    assert "-> PASS" in capsys.readouterr().out


def test_a_packed_file_that_changed_on_the_way_is_refused(gpu_dry_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(gpu_dry_run["complete"], copy)
    (copy / "figures" / "ci" / "sweep.csv").write_text("tampered\n")
    with pytest.raises(ship.SicsError, match="does not match its sha256"):
        ship.restore(copy, tmp_path / "figures")
    assert not (tmp_path / "figures").exists()  # nothing restored
