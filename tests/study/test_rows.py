"""sweep.csv is append-only: runs at once lose no row, a killed writer breaks no read, and an
append costs the row, not the file."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from sics.study.rows import COLUMNS, HEADER, append_row, csv_line, read_rows


def make_row(i: int, writer: int = 0) -> dict:
    row = {c: f"{c}-{i}" for c in COLUMNS}
    row.update(scorer="logistic_smooth", kappa="1", sparsity=0.5 + i % 4 / 10, seed=i, accuracy=i / 1000,
               mask_hash="0123456789ab", params=json.dumps({"lam": 0.2, "sigma": [0.1, 1]}),
               data="CIFAR-10, \"q75\" copy", key=f"w{writer}-{i:05d}")  # fmt: skip
    return row


def _append_many(path: str, writer: int, n: int) -> None:
    for i in range(n):
        append_row(Path(path), make_row(i, writer))


def test_rows_read_back_as_written(tmp_path):
    path = tmp_path / "sweep.csv"
    rows = [make_row(i) for i in range(5)]
    for row in rows:
        append_row(path, row)
    back = read_rows(path)
    assert list(back.columns) == COLUMNS
    assert back["key"].tolist() == [r["key"] for r in rows]
    assert back["params"].map(json.loads).tolist() == [json.loads(r["params"]) for r in rows]
    assert back["data"].iloc[0] == 'CIFAR-10, "q75" copy'
    assert back["kappa"].tolist() == ["1"] * 5 and back["mask_hash"].iloc[0] == "0123456789ab"
    assert back["accuracy"].tolist() == [r["accuracy"] for r in rows]


def test_identifiers_that_look_like_numbers_read_back_as_text(tmp_path):
    path = tmp_path / "sweep.csv"
    append_row(path, {**make_row(0), "git_rev": "788302e304", "key": "0123456789", "mask_hash": "1e5",
                      "ckpt_id": "12345", "precision": "32"})  # fmt: skip
    back = read_rows(path).iloc[0]
    assert (back["git_rev"], back["key"], back["mask_hash"], back["ckpt_id"], back["precision"]) == (
        "788302e304", "0123456789", "1e5", "12345", "32")


def test_concurrent_writers_lose_no_row(tmp_path):
    path, writers, n = tmp_path / "sweep.csv", 4, 150
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), w, n)) for w in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    rows = read_rows(path)
    assert len(rows) == writers * n
    assert set(rows["key"]) == {f"w{w}-{i:05d}" for w in range(writers) for i in range(n)}
    lines = path.read_bytes().splitlines(keepends=True)
    assert lines[0] == HEADER and lines.count(HEADER) == 1  # one header, at the top
    assert len(lines) == 1 + writers * n and all(line.endswith(b"\n") for line in lines)


def test_a_torn_last_line_is_dropped_on_read_and_cut_on_the_next_append(tmp_path):
    path = tmp_path / "sweep.csv"
    for i in range(3):
        append_row(path, make_row(i))
    whole = path.read_bytes()
    torn = csv_line(make_row(3)[c] for c in COLUMNS)[:-25]  # a writer killed mid-append
    with open(path, "ab") as f:
        f.write(torn)
    assert read_rows(path)["key"].tolist() == [f"w0-{i:05d}" for i in range(3)]
    append_row(path, make_row(4))
    assert path.read_bytes() == whole + csv_line(make_row(4)[c] for c in COLUMNS)
    assert read_rows(path)["key"].tolist() == [f"w0-{i:05d}" for i in (0, 1, 2, 4)]
    pd.read_csv(path)  # a plain CSV again


def test_a_torn_header_is_rewritten(tmp_path):
    path = tmp_path / "sweep.csv"
    path.write_bytes(HEADER[:40])  # killed while creating the file
    assert read_rows(path).empty
    append_row(path, make_row(0))
    assert path.read_bytes() == HEADER + csv_line(make_row(0)[c] for c in COLUMNS)


def test_a_writer_killed_at_a_random_moment_leaves_a_readable_file(tmp_path):
    path = tmp_path / "sweep.csv"
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        from test_rows import make_row
        from sics.study.rows import append_row
        i = 0
        while True:
            append_row(Path({str(path)!r}), make_row(i))
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and len(read_rows(path)) < 20:
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait()
    n = len(read_rows(path))
    assert n >= 20
    append_row(path, make_row(10**6))
    rows = read_rows(path)
    assert len(rows) == n + 1 and rows["key"].iloc[-1] == f"w0-{10**6:05d}"


def test_an_append_does_not_rewrite_the_file(tmp_path):
    path = tmp_path / "sweep.csv"
    for i in range(200):
        append_row(path, make_row(i))
    before, inode = path.read_bytes(), path.stat().st_ino
    line = csv_line(make_row(200)[c] for c in COLUMNS)
    append_row(path, make_row(200))
    after = path.read_bytes()
    assert path.stat().st_ino == inode  # the same file, not a renamed copy
    assert after[: len(before)] == before and after[len(before) :] == line  # only the line added


def test_duplicate_keys_read_once_keeping_the_first(tmp_path):
    path = tmp_path / "sweep.csv"
    first, again = make_row(1), dict(make_row(1), accuracy=0.999)
    for row in (first, make_row(2), again):
        append_row(path, row)
    rows = read_rows(path)
    assert rows["key"].tolist() == ["w0-00001", "w0-00002"]
    assert rows["accuracy"].iloc[0] == first["accuracy"]


def test_files_written_whole_by_earlier_versions_stay_readable_and_appendable(tmp_path):
    path = tmp_path / "sweep.csv"
    old = pd.DataFrame([make_row(i) for i in range(3)], columns=COLUMNS)
    old.to_csv(path, index=False)  # how sweep.csv used to be written
    pd.testing.assert_frame_equal(read_rows(path), pd.read_csv(path, dtype={"kappa": str, "mask_hash": str}))
    append_row(path, make_row(3))
    assert read_rows(path)["key"].tolist() == [f"w0-{i:05d}" for i in range(4)]


def test_a_file_with_other_columns_is_rewritten_once_in_the_current_ones(tmp_path):
    path = tmp_path / "sweep.csv"
    old_columns = [c for c in COLUMNS if c not in ("n_calib", "scorer_version")]
    pd.DataFrame([make_row(0)], columns=old_columns).to_csv(path, index=False)
    append_row(path, make_row(1))
    assert path.read_bytes().startswith(HEADER)
    rows = read_rows(path)
    assert rows["key"].tolist() == ["w0-00000", "w0-00001"] and list(rows.columns) == COLUMNS
    assert pd.isna(rows["n_calib"].iloc[0]) and rows["n_calib"].iloc[1] == "n_calib-1"


SWEEP = """
import sys, time
from pathlib import Path
from sics.study.study import prepare
from sics.study.sweep import run_sweep
study = prepare("ci", sys.argv[1], device="cpu", progress=False, epochs=1)
ready = Path(sys.argv[3])
(ready / sys.argv[2]).touch()
while len(list(ready.iterdir())) < 2:  # start sweeping together
    time.sleep(0.01)
run_sweep(study, sys.argv[2].split(","), [0.5, 0.6, 0.7, 0.8], n_seeds=2)
"""


@pytest.mark.e2e  # a subprocess or notebook run
def test_two_sweeps_of_one_profile_at_once_keep_every_row(tiny_tree, tmp_path):
    """Two processes sweep different scorers into one sweep.csv at once; both keep all rows."""
    env = dict(os.environ, SICS_PROGRESS="0")
    prep = "from sics.study.study import prepare; import sys; prepare('ci', sys.argv[1], device='cpu', epochs=1)"
    subprocess.run([sys.executable, "-c", prep, str(tiny_tree)], env=env, check=True, timeout=300)
    groups = ["magnitude,tent_raw,logistic_raw", "magnitude,random,sine_smooth"]
    ready = tmp_path / "ready"
    ready.mkdir()
    procs = [subprocess.Popen([sys.executable, "-c", SWEEP, str(tiny_tree), g, str(ready)], env=env)
             for g in groups]  # fmt: skip
    for p in procs:
        assert p.wait(timeout=300) == 0
    rows = read_rows(Path(os.environ["SICS_FIGURES"]) / "ci" / "sweep.csv")
    n_seeds = {"magnitude": 1, "tent_raw": 2, "logistic_raw": 2, "random": 2, "sine_smooth": 2}
    assert len(rows) == 4 * sum(n_seeds.values())
    assert rows.groupby("scorer").size().to_dict() == {k: 4 * v for k, v in n_seeds.items()}
