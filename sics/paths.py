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


def run_dir(profile: str, run: int = 0) -> Path:
    """Where training run `run` of a profile's recipe keeps its weights and study outputs.

    Run k is the recipe trained with `train_seed = k` and nothing else changed. Run 0 is the
    network committed first, at `figures/<profile>/`, where it always was; run k >= 1 lives at
    `figures/<profile>/runs/<k>/`. Created on first use.
    """
    if isinstance(run, bool) or not isinstance(run, int) or run < 0:
        raise ValueError(f"a training run is a non-negative integer, not {run!r}")
    path = figures_root() / profile if run == 0 else figures_root() / profile / "runs" / str(run)
    path.mkdir(parents=True, exist_ok=True)
    return path


def notebooks_dir() -> Path:
    return REPO / "notebooks"
