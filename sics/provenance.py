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
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .files import write_json
from .hardware import cpu_isa, cpu_name, default_threads, device_type
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


@dataclass(frozen=True)
class StudyRecord:
    """How a study's results were made, as its outputs state it: what provenance reads, never a
    live study (`sics.study.record.study_record` makes one)."""

    profile: str
    model: str  # the geometry, with the unit where it is not the profile's own and the run where k >= 1
    data: str  # the data the results are measured on (human-readable)
    n_test: int
    bundle_measured_on: tuple[str, ...]  # the committed bundle's record of where its results were measured
    measured_here: bool  # this process (or this machine's cache) gave a result
    device: str  # where this process evaluates, e.g. 'CPU (AMD EPYC, avx2, 2 threads)'
    precision: str  # e.g. 'cpu-bf16'
    precision_label: str  # e.g. 'cpu-bf16 (emulated in fp32)'
    ckpt_id: str
    revision: str  # the revision that measured the results, else this tree's
    unit: str
    data_loaded: bool
    dense_accuracy: float
    train_seed: int
    trained_now: bool
    weights_sha256: str | None
    train_seconds: float

    @property
    def here(self) -> str:
        """Where and how this process evaluates, e.g. 'CPU (AMD EPYC, avx2, 2 threads), cpu-fp32'."""
        return f"{self.device}, {self.precision_label}"

    @property
    def measured_on(self) -> str:
        """The bundle's record, plus this machine where it measured something itself."""
        labels = list(self.bundle_measured_on)
        if self.measured_here or not labels:
            labels = list(dict.fromkeys([*labels, self.here]))
        return "; ".join(labels)


def caption(rec: StudyRecord) -> str:
    """One line for the foot of every table and figure."""
    return (f"profile={rec.profile} ({rec.model}) | data={rec.data.split(' [')[0]}, n_test={rec.n_test} | "
            f"measured on {rec.measured_on} | ckpt={rec.ckpt_id} | rev={rec.revision}")  # fmt: skip


def stage_info(rec: StudyRecord, seconds: float, **extra) -> dict:
    """What a notebook stage records: how the numbers it made were made."""
    return dict(seconds=round(seconds, 1), device=rec.device, measured_on=rec.measured_on, unit=rec.unit,
                data=rec.data, data_loaded=rec.data_loaded, precision=rec.precision, ckpt_id=rec.ckpt_id,
                dense_accuracy=rec.dense_accuracy, n_test=rec.n_test, train_seed=rec.train_seed,
                trained_now=rec.trained_now, weights_sha256=rec.weights_sha256,
                train_seconds=round(rec.train_seconds, 1), **extra)  # fmt: skip
