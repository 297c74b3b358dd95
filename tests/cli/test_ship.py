"""`sics.ship` at the scratch study's sizes: what a lent GPU machine returns fits its limits (8
flat files, 16 MiB each, 64 MiB in all), and what does not fit is named, never truncated."""

from __future__ import annotations

import os

from sics import ship


def layout(root, calibration_mb: float) -> None:
    """Files of the sizes a scratch run writes: 3 bf16 shards of 15 MB (ViT-Small: 43 MB), rows,
    bundles, token calibration statistics, tables and figures."""
    sizes = {"scratch/weights-00001-of-00003.safetensors": 15e6, "scratch/weights-00002-of-00003.safetensors": 15e6,
             "scratch/weights-00003-of-00003.safetensors": 12.7e6, "scratch/weights.json": 2e4,
             "scratch/sweep.csv": 5e5, "scratch/results.zip": 1e6, "scratch/provenance.json": 6e3,
             "scratch/calibration-mlp_channels-0a1b2c3d.npz": 4.5e5, "scratch/gpu_run/stages.tsv": 300,
             "scratch-tokens/calibration-tokens-b-1-cls_attention-0a1b2c3d.npz": calibration_mb * 1e6,
             "scratch-tokens/calibration-tokens-b-1-norm-0a1b2c3d.npz": calibration_mb * 1e6,
             "scratch-tokens/results.zip": 2.5e5, "scratch-tokens/sweep.csv": 1e5,
             "scratch/fig1.png": 1.5e5, "scratch/table2.md": 3e3, "scratch/table2.csv": 3e3,
             "resnet/fig_units_scratch.pdf": 3e4, "resnet/results.zip": 1e6}  # fmt: skip
    for rel, n in sizes.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(os.urandom(int(n)))  # incompressible, like weights


def test_a_scratch_sized_study_fits_the_returned_files(tmp_path):
    layout(tmp_path / "figures", calibration_mb=4.6)
    manifest = ship.pack("scratch", tmp_path / "out", tmp_path / "figures")
    names = [p.name for p in ship.returned(tmp_path / "out")]
    assert len(names) <= ship.MAX_FILES and all(ship.NAME.match(n) for n in names)
    assert sum((tmp_path / "out" / n).stat().st_size for n in names) <= ship.TOTAL_BYTES
    assert all((tmp_path / "out" / n).stat().st_size <= ship.LIMIT_BYTES for n in names)
    assert not manifest["left_out"] and "resnet/results.zip" not in manifest["files"]  # not this study's
    back = ship.restore(tmp_path / "out", tmp_path / "back")
    assert all((tmp_path / "back" / r).read_bytes() == (tmp_path / "figures" / r).read_bytes() for r in back["files"])


def test_what_does_not_fit_is_named_and_the_rest_still_comes_back(tmp_path):
    layout(tmp_path / "figures", calibration_mb=9.0)  # the token statistics no longer fit
    manifest = ship.pack("scratch", tmp_path / "out", tmp_path / "figures")
    assert all(n.startswith("scratch-tokens/calibration-") for n in manifest["left_out"]) and manifest["left_out"]
    back = ship.restore(tmp_path / "out", tmp_path / "back")
    assert "scratch/sweep.csv" in back["files"] and set(back["left_out"]) == set(manifest["left_out"])
    assert all(p.stat().st_size <= ship.LIMIT_BYTES for p in ship.returned(tmp_path / "out"))
