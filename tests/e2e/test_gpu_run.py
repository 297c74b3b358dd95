"""The GPU reference run, dry on this CPU (ci profile, tiny data, a stub nvidia-smi): one test,
whose steps check that what comes back fits the device's limits, is complete, survives a TERM,
and regenerates and verifies here without training."""

from __future__ import annotations

import io
import json
import os
import shutil

import pandas as pd
import pytest

from sics import ship
from sics.cli import verify
from sics.cli.paper import NOTEBOOKS
from sics.cli.paper import main as paper
from sics.paths import REPO
from sics.study import bundle
from sics.study.results import pred_name
from sics.study.rows import read_rows


def check_returned(out) -> list[str]:
    """What the device tool would bring back from `out`: at most 8 flat files with plain names,
    each at most 16 MiB, 64 MiB in all. Returns their names."""
    assert all(p.is_file() for p in out.iterdir() if not p.name.startswith(".")), "a folder in $OUT"
    files = ship.returned(out)
    assert len(files) <= 8 and all(ship.NAME.match(f.name) for f in files), [f.name for f in files]
    assert all(f.stat().st_size <= 16 * 2**20 for f in files)
    assert sum(f.stat().st_size for f in files) <= 64 * 2**20
    return [f.name for f in files]


def stages(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), sep="\t", dtype=str)


GPU_SCRIPT = REPO / "tools" / "gpu_reference_run.sh"


def dry_run(tiny_archive, base) -> dict:
    """`tools/gpu_reference_run.sh` on this CPU with the ci profile, tiny data and a stub
    nvidia-smi: once stopped with TERM in notebook 02 (once its first sweep row is written), then
    run again to completion over the same cache and outputs (as a rerun on the same machine
    would: it trains nothing, since the weights are there)."""
    import signal
    import subprocess
    import sys
    import time

    (base / "bin").mkdir(parents=True)
    stub = base / "bin" / "nvidia-smi"
    stub.write_text('#!/bin/sh\necho "name, memory.total [MiB], driver_version"\necho "Stub GPU (CPU dry run), 0 MiB, 0"\n')
    stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{base / 'bin'}:{os.environ['PATH']}", "PROFILE": "ci", "SHARD_MB": "0.03",
           "PYTHON": sys.executable, "SICS_DATA": str(tiny_archive), "SICS_CACHE": str(base / "cache"),
           "SICS_FIGURES": str(base / "figures"), "SICS_PROGRESS": "0", "DEADLINE_S": "400", "BENCH_S": "40"}  # fmt: skip
    killed = subprocess.Popen(["bash", str(GPU_SCRIPT)], env={**env, "OUT": str(base / "killed")},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    rows, t0 = base / "figures" / "ci" / "sweep.csv", time.time()
    while not (rows.exists() and rows.read_bytes().count(b"\n") >= 2):  # the header and a row
        assert killed.poll() is None and time.time() - t0 < 300, "the dry run ended before notebook 02 wrote a row"
        time.sleep(0.05)
    killed.send_signal(signal.SIGTERM)
    killed_rc = killed.wait(timeout=120)
    records = base / "figures" / "ci" / "gpu_run"
    killed_stages = (records / "stages.tsv").read_text()
    complete = subprocess.run(["bash", str(GPU_SCRIPT)], env={**env, "OUT": str(base / "complete")},
                              capture_output=True, text=True, timeout=900)  # fmt: skip
    return dict(base=base, killed=base / "killed", killed_rc=killed_rc, killed_stages=killed_stages,
                complete=base / "complete", complete_rc=complete.returncode,
                log=complete.stdout + complete.stderr)  # fmt: skip


def check_stopped_by_term_midway_returns_what_had_finished(gpu_dry_run, tmp_path):
    out = gpu_dry_run["killed"]
    assert gpu_dry_run["killed_rc"] == 143
    names = check_returned(out)
    assert "study.tar" in names and sum(n.startswith("ci.weights-") for n in names) >= 2  # bf16 shards
    manifest = ship.restore(out, tmp_path)
    assert {"ci/weights.json", "ci/dense.csv", "ci/training_curve.png", "ci/results.zip"} <= set(manifest["files"])
    st = stages((tmp_path / "ci" / "gpu_run" / "stages.tsv").read_text())
    done = st[st["status"] == "0"]["stage"].tolist()
    stopped = st[st["status"] == "interrupted"]["stage"].tolist()
    assert done[:2] == ["train", "01_finetune"] and done[1:] == list(NOTEBOOKS[: len(done) - 1])
    assert stopped[0] in (NOTEBOOKS[len(done) - 1], "between_notebooks") and "notebooks" in stopped
    assert "interrupted (TERM)" in (tmp_path / "ci" / "gpu_run" / "run.log").read_text()
    # the notebook stopped midway had written rows; each came back with its per-image result
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SICS_FIGURES", str(tmp_path))
        found = bundle.load("ci")
    rows = read_rows(tmp_path / "ci" / "sweep.csv")
    rows = rows[rows["ckpt_id"] == found.ckpt_id]
    assert len(rows) > 0
    assert all(pred_name(r.mask_hash, int(r.recovery_steps), int(r.seed)) in found for r in rows.itertuples())


def check_to_completion_returns_every_output_folder_and_the_shards(gpu_dry_run, tmp_path):
    out = gpu_dry_run["complete"]
    assert gpu_dry_run["complete_rc"] == 0, gpu_dry_run["log"][-3000:]
    assert set(check_returned(out)) >= {"study.tar", "figures.tar"}
    manifest = ship.restore(out, tmp_path)
    files = set(manifest["files"])
    assert not manifest["left_out"]
    st = stages((tmp_path / "ci" / "gpu_run" / "stages.tsv").read_text()).set_index("stage")["status"]
    assert (st == "0").all() and {"notebooks", "bench", "08_architectures"} <= set(st.index), st
    assert "train" not in st.index  # the stopped run's weights were there: nothing trained again
    for t in ("dense", "table1", "table2", "table3", "table4", "table5", "claims", "phase"):
        assert {f"ci/{t}.{ext}" for ext in ("csv", "md", "tex")} <= files
    assert {"ci-tokens/table2.csv", "ci-tokens/results.zip", "ci/sweep.csv", "ci-tokens/sweep.csv"} <= files
    assert any(f.startswith("ci/calibration-mlp_channels-") for f in files)
    assert any(f.startswith("ci-tokens/calibration-tokens-b-1-cls_attention-") for f in files)
    assert {"ci_resnet/fig_units_ci.png", "ci_resnet/fig_units_ci.pdf"} <= files
    assert not any(f.startswith("ci_resnet/") and "fig_units" not in f for f in files)  # only what ci drew there
    rec = tmp_path / "ci" / "gpu_run"
    assert "Stub GPU" in (rec / "gpu.txt").read_text() and json.loads((rec / "bench.json").read_text())
    meta = json.loads((tmp_path / "ci" / "weights.json").read_text())
    assert meta["dtype"] == "bf16" and meta["ckpt_id"].endswith("-bf16") and 0 <= meta["test_accuracy"] <= 1
    assert len(meta["files"]) >= 2 and all(f"ci/{n}" in files for n in meta["files"])


def restore_and_regenerate(gpu_dry_run, base):
    """What came back, restored into an empty figures folder, then regenerated with no data and
    an empty cache (notebooks 01-07; 08 studies the committed ResNet, which is not shipped)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SICS_FIGURES", str(base / "figures"))
        mp.setenv("SICS_CACHE", str(base / "cache"))
        mp.delenv("SICS_DATA", raising=False)
        manifest = ship.restore(gpu_dry_run["complete"], base / "figures")
        before = {rel: (base / "figures" / rel).read_bytes() for rel in manifest["files"]}
        assert paper(["--profile", "ci", "--engine", "inline", "--only", "01,02,03,04,05,06,07"]) == 0
    return base / "figures", before


def check_a_cpu_regenerates_it_byte_for_byte(restored):
    root, before = restored
    differ = [rel for rel, data in before.items() if (root / rel).read_bytes() != data]
    assert differ == [], differ  # a partial run's record goes to the git-ignored last_run.json only
    last = json.loads((root / "ci" / "notebooks" / "last_run.json").read_text())
    assert last["stages"]["make_paper --only 01,02,03,04,05,06,07"]["engine"] == "inline"
    assert not (root / "ci" / "weights.safetensors").exists()  # nothing was trained


def check_a_cpu_verifies_it(restored, tiny_archive, monkeypatch, capsys):
    root, _ = restored
    monkeypatch.setenv("SICS_FIGURES", str(root))
    assert verify.main(["--profile", "ci", "--data", str(tiny_archive), "--n", "6"]) == 0
    assert "-> PASS" in capsys.readouterr().out


def check_a_pack_that_changed_on_the_way_is_refused(gpu_dry_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(gpu_dry_run["complete"], copy)
    shard = next(p for p in copy.iterdir() if p.name.startswith("ci.weights-"))
    shard.write_bytes(shard.read_bytes()[:-8])
    with pytest.raises(ship.SicsError, match="does not match its sha256"):
        ship.restore(copy, tmp_path / "figures")
    assert not (tmp_path / "figures").exists()  # nothing restored


def test_the_gpu_reference_run_dry_on_this_cpu(tiny_archive, tmp_path, monkeypatch, capsys):
    """Stopped by TERM midway, then run to completion: each returns what it finished, within the
    device's limits; a CPU regenerates and verifies what came back, and refuses a changed pack."""
    for sub in ("killed", "complete", "restored", "changed"):
        (tmp_path / sub).mkdir()
    run = dry_run(tiny_archive, tmp_path / "run")
    check_stopped_by_term_midway_returns_what_had_finished(run, tmp_path / "killed")
    check_to_completion_returns_every_output_folder_and_the_shards(run, tmp_path / "complete")
    restored = restore_and_regenerate(run, tmp_path / "restored")
    check_a_cpu_regenerates_it_byte_for_byte(restored)
    check_a_cpu_verifies_it(restored, tiny_archive, monkeypatch, capsys)
    check_a_pack_that_changed_on_the_way_is_refused(run, tmp_path / "changed")
