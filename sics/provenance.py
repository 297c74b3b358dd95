"""How every output was made: profile, data source, device, seeds, versions, git revision."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from pathlib import Path

import torch

from .io import write_json
from .paths import REPO, figures_dir


def git_revision() -> str:
    """Short commit of the working tree, with '+dirty' when its code has uncommitted changes.

    Changes under figures/ do not count: a run rewrites the committed outputs it regenerates
    (their captions carry this revision), and that must not mark a clean clone's run dirty.

    `SICS_GIT_REV` overrides it, for copies of the tree without .git (a lent GPU machine).
    """
    if os.environ.get("SICS_GIT_REV"):
        return os.environ["SICS_GIT_REV"]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout.strip()  # fmt: skip
        code_only = ["--", ".", ":!figures"]
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", *code_only], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()  # fmt: skip
        return rev + ("+dirty" if dirty else "")
    except Exception:
        return "unknown"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def environment() -> dict:
    import timm

    return dict(python=platform.python_version(), torch=torch.__version__, timm=timm.__version__,
                cuda=torch.version.cuda, platform=platform.platform())  # fmt: skip


def record(profile: str, stage: str, **info) -> Path:
    """Merge one stage's facts into figures/<profile>/provenance.json (atomically)."""
    path = figures_dir(profile) / "provenance.json"
    prov = json.loads(path.read_text()) if path.exists() else {}
    prov.update(profile=profile, git_revision=git_revision(), environment=environment(),
                updated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))  # fmt: skip
    prov.setdefault("stages", {})[stage] = info
    write_json(path, prov)
    return path


def measured_here(study) -> str:
    """Where and how this process evaluates, e.g. 'CPU (x86_64, 2 threads), cpu-bf16'."""
    return f"{device_name(study.device)}, {study.precision}"


def measured_on(study) -> str:
    """Where the study's results were measured: the committed bundle's record when every
    result came from it (the data never loaded), else here."""
    if study.bundle is not None and not study.data_loaded:
        return "; ".join(study.bundle.meta.get("measured_on") or []) or "unknown (bundle)"
    return measured_here(study)


def caption(study) -> str:
    """One line for the foot of every table and figure."""
    p = study.profile
    unit = "" if study.unit.name == p.unit else f", unit={study.unit.tag}"
    return (f"profile={p.name} ({p.geometry}{unit}) | "
            f"data={study.data_source.split(' [')[0]}, n_test={study.n_test} | "
            f"measured on {measured_on(study)} | ckpt={study.trained.ckpt_id} | rev={git_revision()}")  # fmt: skip


def stage_info(study, seconds: float, **extra) -> dict:
    """What a notebook stage records: how the numbers it made were made."""
    p = study.profile
    return dict(seconds=round(seconds, 1), device=device_name(study.device), measured_on=measured_on(study),
                unit=study.unit.tag,
                data=study.data_source,
                data_loaded=study.data_loaded, precision=study.precision,
                ckpt_id=study.trained.ckpt_id, dense_accuracy=study.dense_accuracy,
                n_test=study.n_test, n_seeds=p.n_seeds, train_seed=p.train_seed,
                trained_now=study.trained.trained_now,
                weights_sha256=study.trained.weights_sha256,
                train_seconds=round(study.trained.train_seconds, 1), **extra)  # fmt: skip
