"""One paths helper, so nothing depends on the working directory (notebooks, make, tests)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Smoke-scale profiles: their outputs (figures/<name>/, figures/<name>-<unit>/) are git-ignored,
# never committed results
SMOKE_PROFILES = ("quick", "ci", "ci_resnet", "ci_lm")


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


def run_name(study: str, run: int = 0) -> str:
    """The output folder of training run `run` of a study, relative to figures/.

    Run k is the recipe trained with `train_seed = k` and nothing else changed. Run 0 is the
    network committed first, at `figures/<study>/`, where it always was; run k >= 1 lives at
    `figures/<study>/runs/<k>/`.
    """
    if isinstance(run, bool) or not isinstance(run, int) or run < 0:
        raise ValueError(f"a training run is a non-negative integer, not {run!r}")
    return study if run == 0 else f"{study}/runs/{run}"


def run_dir(study: str, run: int = 0, *, create: bool = True) -> Path:
    """`figures/<run_name(study, run)>/`, created on first use unless `create=False` (a look-up)."""
    path = figures_root() / run_name(study, run)
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def notebooks_dir() -> Path:
    return REPO / "notebooks"
