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
