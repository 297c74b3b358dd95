"""How every output was made: profile, data source, device, seeds, versions, git revision.

Two records per profile folder. `provenance.json` (committed) describes the results: the stage
facts of the run that last *changed* them. A run that only redraws unchanged results from the
bundle leaves it byte-identical, so `git status` stays clean; what that run did (its wall time,
machine, revision) goes to the git-ignored `notebooks/last_run.json` beside the executed
notebooks.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from .files import write_json
from .hardware import cpu_isa, cpu_name, default_threads, device_type
from .models import geometry
from .paths import REPO, figures_dir

# Stage facts that describe one run, not its results: a run that changes none of the others
# leaves provenance.json as it is.
VOLATILE = frozenset({"seconds", "total_seconds", "seconds_per_notebook", "data_loaded", "device", "engine",
                      "trained_now"})  # fmt: skip

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


def fingerprint(device, precision: str, emulated: bool = False) -> dict:
    """Where a result is measured, precisely enough to tell machines apart: two machines with
    equal fingerprints run the same kernels in the same order, so their per-image results agree
    exactly; with different ones a few near-tie images may flip. `emulated`: bf16 emulated in
    fp32 (`sics.models.bf16`), other kernels than native bf16. Imports torch: only what measures
    a result asks for it."""
    import torch

    device = torch.device(device)
    fp = dict(device=device.type, precision=precision, torch=torch.__version__,
              torch_commit=(torch.version.git_version or "")[:12], threads=torch.get_num_threads())  # fmt: skip
    if emulated:
        fp["bf16"] = "emulated"
    if device.type == "cuda":
        fp.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                  cudnn=torch.backends.cudnn.version())  # fmt: skip
    else:
        fp.update(cpu=cpu_name(), isa=cpu_isa(), kernels=torch.backends.cpu.get_cpu_capability(),
                  onednn_max_isa=os.environ.get("ONEDNN_MAX_CPU_ISA", ""))  # fmt: skip
    return fp


def device_name(device) -> str:
    """E.g. 'CPU (AMD EPYC, avx2, 2 threads)' or the GPU's name. The threads are torch's where it
    is loaded, else the cores this process may use (torch's default)."""
    if device_type(device) == "cuda":
        import torch

        return torch.cuda.get_device_name(torch.device(device))
    isa = cpu_isa()
    top = next((f for f in ("amx_bf16", "avx512_bf16", "avx512f", "avx2", "sve", "asimd") if f in isa), "")
    return f"CPU ({cpu_name()}{', ' + top if top else ''}, {_threads()} threads)"


def _threads() -> int:
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch else default_threads()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    """The software versions, read from the installed packages (no import of torch or timm); CUDA's
    version where torch is loaded (else unknown to a run that loaded no model)."""
    torch = sys.modules.get("torch")
    return dict(python=platform.python_version(), torch=torch.__version__ if torch else _version("torch"),
                timm=_version("timm"), cuda=torch.version.cuda if torch else None,
                platform=platform.platform())  # fmt: skip


def _stable(info: dict) -> str:
    """The facts that describe results, as canonical JSON (so a NaN compares equal to itself)."""
    return json.dumps({k: v for k, v in info.items() if k not in VOLATILE}, sort_keys=True, default=str)


def record(profile: str, stage: str, *, committed: bool = True, **info) -> Path:
    """Record one stage's facts: in figures/<profile>/provenance.json when they differ from the
    recorded ones in more than `VOLATILE` facts (the results changed), and always in the
    git-ignored notebooks/last_run.json. Both written atomically. `committed=False` writes the
    latter only (a partial `make paper`'s timing: it changes no result)."""
    folder = figures_dir(profile)
    run = dict(profile=profile, git_revision=git_revision(), environment=environment(),
               updated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))  # fmt: skip
    last = folder / "notebooks" / "last_run.json"
    runs = json.loads(last.read_text()) if last.exists() else {}
    runs.update(run)
    runs.setdefault("stages", {})[stage] = info
    write_json(last, runs)
    path = folder / "provenance.json"
    if not committed:
        return last
    prov = json.loads(path.read_text()) if path.exists() else {}
    old = prov.get("stages", {}).get(stage)
    if old is not None and _stable(old) == _stable(info):  # (JSON: tuples read back as lists)
        return path  # the same results, redrawn: keep the record of the run that made them
    prov.update(run)
    prov.setdefault("stages", {})[stage] = info
    write_json(path, prov)
    return path


def measured_here(study) -> str:
    """Where and how this process evaluates, e.g. 'CPU (AMD EPYC, avx2, 2 threads), cpu-fp32'."""
    return f"{device_name(study.where.type)}, {study.where.precision_label}"


def measured_on(study) -> str:
    """Where the study's results were measured: the committed bundle's record, plus this
    machine when this process evaluated something itself."""
    labels = list(study.bundle.meta.get("measured_on") or ["unknown (bundle)"]) if study.bundle is not None else []
    if study.measured_locally or not labels:
        labels = list(dict.fromkeys([*labels, measured_here(study)]))
    return "; ".join(labels)


def results_revision(study) -> str:
    """The git revision that measured the study's results (`Study.results_revision`), else this
    tree's. Captions carry it, so redrawing unchanged results later changes no caption."""
    return study.results_revision() or git_revision()


def caption(study) -> str:
    """One line for the foot of every table and figure."""
    p = study.profile
    unit = "" if study.unit.name == p.unit else f", unit={study.unit.tag}"
    run = f", run {p.train_seed}" if p.train_seed else ""
    return (f"profile={p.name} ({geometry(p)}{unit}{run}) | "
            f"data={study.data_source.split(' [')[0]}, n_test={study.n_test} | "
            f"measured on {measured_on(study)} | ckpt={study.trained.ckpt_id} | rev={results_revision(study)}")  # fmt: skip


def stage_info(study, seconds: float, **extra) -> dict:
    """What a notebook stage records: how the numbers it made were made."""
    p = study.profile
    return dict(seconds=round(seconds, 1), device=device_name(study.where.type), measured_on=measured_on(study),
                unit=study.unit.tag,
                data=study.data_source,
                data_loaded=study.data_loaded, precision=study.where.precision,
                ckpt_id=study.trained.ckpt_id, dense_accuracy=study.dense_accuracy,
                n_test=study.n_test, train_seed=p.train_seed,
                trained_now=study.trained.trained_now,
                weights_sha256=study.trained.weights_sha256,
                train_seconds=round(study.trained.train_seconds, 1), **extra)  # fmt: skip
