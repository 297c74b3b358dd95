"""Regenerating the committed results writes the committed bytes: `make paper` from a fresh clone
leaves git clean, and where a result changes, the diff shows exactly that result. It runs no model,
so it imports neither torch nor timm: the regeneration runs in a fresh process that refuses them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from sics.paths import REPO

# A fresh interpreter whose import system refuses torch, torchvision and timm, then `make paper`
# (inline engine): any import of them on the way fails the run.
REFUSE = """
import json, sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchvision", "timm"):
            raise ImportError(f"this process refuses {name}: regenerating runs no model")

sys.meta_path.insert(0, Refuse())
"""
TORCH_FREE = REFUSE + """
from sics.cli.paper import main

code = main(["--profile", "reference", "--engine", "inline"])
print("loaded:", sorted(m for m in ("torch", "torchvision", "timm") if m in sys.modules))
sys.exit(code)
"""

# What a regeneration reads (everything else under these folders is an output it rewrites)
INPUTS = ("weights.safetensors", "weights.json", "sweep.csv", "results.zip")


def is_input(name: str) -> bool:
    """A study's committed inputs: weights, rows, per-image results, calibration statistics."""
    return name in INPUTS or (name.startswith("calibration-") and name.endswith(".npz"))


def committed_files() -> dict[str, list[str]]:
    """Study folder -> its committed files, as git lists them."""
    out = subprocess.run(["git", "ls-files", "figures"], cwd=REPO, capture_output=True, text=True, check=True)
    files: dict[str, list[str]] = {}
    for path in out.stdout.split():
        _, folder, *rest = path.split("/")
        if rest:  # (a file directly under figures/, such as .gitkeep, belongs to no study)
            files.setdefault(folder, []).append("/".join(rest))
    return files


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    """The committed inputs (and provenance) copied into an empty folder, then `make paper`
    (inline engine, no data, an empty cache) run over them in a process that refuses torch."""
    files = committed_files()
    if not files.get("reference") or "results.zip" not in files["reference"]:
        pytest.skip("no committed reference study")
    base = tmp_path_factory.mktemp("regenerate")
    for folder, names in files.items():
        for name in names:  # a training run's files sit in runs/<k>/ below the study's folder
            leaf = name.rsplit("/", 1)[-1]
            if is_input(leaf) or leaf == "provenance.json":
                (base / "figures" / folder / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(REPO / "figures" / folder / name, base / "figures" / folder / name)
    env = {k: v for k, v in os.environ.items() if k != "SICS_DATA"}
    env.update(SICS_FIGURES=str(base / "figures"), SICS_CACHE=str(base / "cache"), SICS_PROGRESS="0")
    done = subprocess.run([sys.executable, "-c", TORCH_FREE], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "loaded: []" in done.stdout
    return base / "figures", files


def test_regenerating_the_committed_outputs_writes_them_byte_for_byte(regenerated):
    out, files = regenerated
    differ, missing = [], []
    for folder, names in files.items():
        for name in names:
            new = out / folder / name
            if not new.exists():
                missing.append(f"{folder}/{name}")
            elif new.read_bytes() != (REPO / "figures" / folder / name).read_bytes():
                differ.append(f"{folder}/{name}")
    assert not missing, f"not regenerated: {missing}"
    assert not differ, f"regenerated with other bytes: {differ}"


def test_a_regeneration_writes_nothing_beside_the_committed_files_but_its_run_record(regenerated):
    out, files = regenerated
    extra = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()
                   and "notebooks" not in p.relative_to(out).parts[1:-1]  # (git-ignored run records)
                   and "/".join(p.relative_to(out).parts[1:]) not in files.get(p.relative_to(out).parts[0], []))  # fmt: skip
    assert not extra, extra
    assert (out / "reference" / "notebooks" / "last_run.json").exists()  # git-ignored: this run's record


REBUILD = REFUSE + """
from sics.config import resolve_profile
from sics.selection.select import mask_hash
from sics.study.rows import of_model, read_rows
from sics.study.study import prepare

name, run = sys.argv[1], int(sys.argv[2])
study = prepare(resolve_profile(name).replace(train_seed=run), progress=False)
rows = of_model(read_rows(study.sweep_path), study.trained.ckpt_id, study.n_test)
stale = [r.key for r in rows.itertuples()
         if mask_hash(study.masks(r.scorer, float(r.sparsity), int(r.seed), json.loads(r.params), r.allocation)[1])
         != r.mask_hash]
print(json.dumps(dict(rows=len(rows), stale=stale, model_built=study.trained.model_loaded)))
"""


@pytest.mark.parametrize(("name", "run"), [("reference", 0), ("resnet", 0), ("resnet", 1)])
def test_every_committed_selection_rebuilds_from_the_committed_files_without_torch(name, run):
    """Every row of a committed channel study: its selection rebuilt from the weights read as
    arrays and the saved calibration statistics, in a process that refuses torch, has the
    committed mask hash (the identity of the committed rows, whatever computes the statistics)."""
    import json

    if not (REPO / "figures" / name / ("runs/1" if run else "") / "sweep.csv").exists():
        pytest.skip(f"{name} run {run} is not committed")
    env = {**os.environ, "SICS_FIGURES": str(REPO / "figures")}
    done = subprocess.run([sys.executable, "-c", REBUILD, name, str(run)], cwd=REPO, env=env, capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["rows"] > 100 and found["stale"] == [] and not found["model_built"]
