"""Shared fixtures: every test writes into its own temporary cache and figures folders, and
tests that need no real CIFAR-10 make tiny image-folder data themselves."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from sics.data import CLASSES

os.environ["HF_HUB_OFFLINE"] = "1"
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session", autouse=True)
def isolated_inductor_cache(tmp_path_factory):
    """Inductor compiles into a cache of this session's own: its cache key does not hold
    ATEN_CPU_CAPABILITY, so kernels another run built natively are reused under
    `ATEN_CPU_CAPABILITY=avx2` and train to NaN, and the reverse aborts the process."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path_factory.mktemp("inductor")))
        yield


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory, monkeypatch):
    """Caches and outputs of a test never touch the repository's own."""
    base = tmp_path_factory.mktemp("sics")
    monkeypatch.setenv("SICS_CACHE", str(base / "cache"))
    monkeypatch.setenv("SICS_FIGURES", str(base / "figures"))
    monkeypatch.delenv("SICS_DATA", raising=False)
    monkeypatch.delenv("SICS_WEIGHTS", raising=False)
    monkeypatch.setenv("SICS_PROFILE", "ci")
    return base


def _image(rng: np.random.Generator, label: int) -> bytes:
    """A 32x32 image whose colour depends on the class, so a model can learn something."""
    base = np.zeros((32, 32, 3), dtype=np.float64)
    base[..., label % 3] = 60 + 18 * label
    base += rng.normal(0, 20, size=base.shape)
    buf = io.BytesIO()
    Image.fromarray(base.clip(0, 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def make_tree(root: Path, n_train: int = 12, n_test: int = 4, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("test", n_test)):
        for label, name in enumerate(CLASSES):
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                (d / f"{i:04d}.png").write_bytes(_image(rng, label))
    return root


@pytest.fixture(scope="session")
def tiny_tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("tree") / "cifar")


@pytest.fixture(scope="session")
def tiny_archive(tiny_tree, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("archive") / "tiny.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "test"):
            tar.add(tiny_tree / split, arcname=split)
    return path


GPU_SCRIPT = Path(__file__).resolve().parents[1] / "tools" / "gpu_reference_run.sh"


@pytest.fixture(scope="session")
def gpu_dry_run(tiny_archive, tmp_path_factory) -> dict:
    """`tools/gpu_reference_run.sh` on this CPU with the ci profile, tiny data and a stub
    nvidia-smi: once stopped with TERM in notebook 02 (once its first sweep row is written), then
    run again to completion over the same cache and outputs (as a rerun on the same machine
    would: it trains nothing, since the weights are there)."""
    import signal
    import subprocess
    import sys
    import time

    base = tmp_path_factory.mktemp("gpu-run")
    (base / "bin").mkdir()
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
