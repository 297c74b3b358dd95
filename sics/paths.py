"""One paths helper, so nothing depends on the working directory (notebooks, make, tests)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Smoke-scale profiles: their outputs (figures/<name>/, figures/<name>-<unit>/) are git-ignored,
# never committed results
SMOKE_PROFILES = ("quick", "ci", "ci_resnet")


def cache_dir() -> Path:
    """Where decoded data, checkpoints and per-image predictions live (`SICS_CACHE` overrides)."""
    path = Path(os.environ.get("SICS_CACHE") or REPO / ".cache")
    path.mkdir(parents=True, exist_ok=True)
    return path


def figures_root() -> Path:
    """The folder of every profile's outputs (`SICS_FIGURES` overrides); not created here."""
    return Path(os.environ.get("SICS_FIGURES") or REPO / "figures")


def figures_dir(profile: str) -> Path:
    """Tables, figures, sweep.csv and provenance.json of one profile (created on first use)."""
    path = figures_root() / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def notebooks_dir() -> Path:
    return REPO / "notebooks"
