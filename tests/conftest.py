"""Shared fixtures: every test writes into its own temporary cache and figures folders, and
tests that need no real CIFAR-10 make tiny image-folder data themselves.

The tests mirror the package (tests/<layer>/ for sics/<layer>/; the top-level modules' tests
here). Two tiers: `make unit` runs everything not marked `e2e`; `make e2e` the end-to-end runs
(tests/e2e/, marked by folder here, and the tests marked `e2e` where they are); `make test` both,
then the notebooks under nbval."""

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


def pytest_collection_modifyitems(config, items):
    """Every test under tests/e2e/ is end-to-end (`-m e2e`)."""
    e2e = Path(__file__).parent / "e2e"
    for item in items:
        if e2e in Path(item.fspath).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def ci_paper(tiny_archive, tmp_path_factory) -> Path:
    """One `make paper` of the ci profile (inline engine, tiny data, its own cache), shared by
    every test that reads its outputs; returns its figures folder."""
    from sics.cli.paper import main

    base = tmp_path_factory.mktemp("ci-paper")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SICS_FIGURES", str(base / "figures"))
        mp.setenv("SICS_CACHE", str(base / "cache"))
        mp.setenv("SICS_PROGRESS", "0")
        assert main(["--profile", "ci", "--engine", "inline", "--data", str(tiny_archive)]) == 0
    return base / "figures"
