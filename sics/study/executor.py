"""Sweeps that scale out: a sweep's pending rows as jobs, in chunks, through submitit (the client
the DeiT/DINO family of repositories uses), on local processes or a SLURM cluster.

`SICS_EXECUTOR` (`make paper EXECUTOR=...`) chooses: `inline` (the default: this process), `local`
(submitit's local processes) or `slurm`. Each job rebuilds its study from the profile and the data
path, evaluates its chunk, and writes its rows to a file of its own, `sweep.parts/<part>.csv`
beside `sweep.csv` (appending to one shared file under a lock is unreliable on network
filesystems). The submitting run merges the parts into `sweep.csv` when the jobs end, and every
sweep merges any parts it finds before it reads, so rows of an interrupted job array are never
recomputed: a rerun submits only the rows still missing. Per-image results go to the prediction
cache (`SICS_CACHE`), which the jobs must share with the submitting run (on a cluster: a shared
filesystem).

Cluster settings, from the environment (Make variables of the same names without `SICS_`):
`SICS_CHUNK` rows per job (default 20), `SICS_SLURM_PARTITION` (default: the cluster's),
`SICS_SLURM_TIME` minutes per job (60), `SICS_SLURM_GPUS` per job (1), `SICS_SLURM_CPUS` per job
(8). Job logs go to `figures/<study>/jobs/` (git-ignored).
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from ..config import Profile
from ..errors import ParameterError
from .rows import append_row, merge_parts, parts_dir, read_rows
from .study import prepare

EXECUTORS = ("inline", "local", "slurm")


def chosen() -> str:
    """`SICS_EXECUTOR`, checked: inline | local | slurm."""
    kind = os.environ.get("SICS_EXECUTOR", "inline").strip() or "inline"
    if kind not in EXECUTORS:
        raise ParameterError(f"SICS_EXECUTOR must be one of {', '.join(EXECUTORS)}, got {kind!r}")
    return kind


def _int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    try:
        return int(value) if value else default
    except ValueError:
        raise ParameterError(f"{name} must be an integer, got {value!r}") from None


@dataclass(frozen=True)
class JobSpec:
    """What a job needs to rebuild its study and write its rows."""

    profile: Profile
    data: str | None
    unit: str
    unit_params: dict
    params: dict
    allocation: str
    recovery_steps: int
    tag: str
    rev: str
    parts: str  # the folder of the part files
    precision: str  # the submitter's (`Study.precision`): a job's per-image results must pair with it


def run_chunk(spec: JobSpec, chunk: list, part: str, measure) -> int:
    """In a job: evaluate `chunk` ((scorer, S, seed), key) pairs with `measure` (`sweep.measure`)
    into `<parts>/<part>.csv`, skipping rows already there (a resubmitted job resumes). Returns the
    rows written."""
    study = prepare(spec.profile, spec.data, unit=spec.unit, unit_params=spec.unit_params, progress=False)
    if study.where.precision != spec.precision:  # its results would land in another cache folder
        raise ParameterError(f"this job evaluates in {study.where.precision}, the submitting run in {spec.precision}: "
                             "submit from a machine of the jobs' kind (a GPU node for GPU jobs)")  # fmt: skip
    path = Path(spec.parts) / f"{part}.csv"
    have = set(read_rows(path)["key"]) | set(read_rows(study.sweep_path)["key"])
    stop_after = _int("SICS_JOB_STOP_AFTER", 0)  # fault injection for the tests: die after n rows
    written = 0
    for (sc, S, seed), key in chunk:
        if key in have:
            continue
        row, _ = measure(study, sc, S, seed, spec.params.get(sc, {}), spec.allocation, spec.recovery_steps,
                         tag=spec.tag, key=key, rev=spec.rev)  # fmt: skip
        append_row(path, row)  # (its per-image result is in the cache, where the submitter reads it)
        written += 1
        if stop_after and written >= stop_after and part.endswith("-0"):
            os.kill(os.getpid(), signal.SIGKILL)  # as a preempted job dies: no cleanup
    study.save_calibration()
    return written


def _executor(kind: str, folder: Path):
    import submitit

    ex = submitit.AutoExecutor(folder=folder, cluster="local" if kind == "local" else "slurm")
    if kind == "slurm":
        settings = dict(timeout_min=_int("SICS_SLURM_TIME", 60), gpus_per_node=_int("SICS_SLURM_GPUS", 1),
                        cpus_per_task=_int("SICS_SLURM_CPUS", 8), nodes=1, tasks_per_node=1)  # fmt: skip
        if os.environ.get("SICS_SLURM_PARTITION"):
            settings["slurm_partition"] = os.environ["SICS_SLURM_PARTITION"]
        ex.update_parameters(**settings)
    else:
        ex.update_parameters(timeout_min=_int("SICS_SLURM_TIME", 60))
    return ex


def run_jobs(study, todo: list, measure, *, params: dict, allocation: str, recovery_steps: int, tag: str,
             rev: str, kind: str) -> None:  # fmt: skip
    """Submit the pending rows `todo` in chunks, wait for every job, merge their rows."""
    size = max(1, _int("SICS_CHUNK", 20))
    chunks = [todo[i : i + size] for i in range(0, len(todo), size)]
    parts = parts_dir(study.sweep_path)
    parts.mkdir(parents=True, exist_ok=True)
    spec = JobSpec(study.profile, study.inputs.spec, study.unit.name, study.unit.key(), params, allocation,
                   recovery_steps, tag, rev, str(parts), study.where.precision)  # fmt: skip
    first = chunks[0][0][1] if chunks else "none"  # part names: stable for a chunking of these rows
    names = [f"{first[:8]}-{len(todo)}-{i}" for i in range(len(chunks))]
    ex = _executor(kind, study.sweep_path.parent / "jobs")
    jobs = ex.map_array(run_chunk, [spec] * len(chunks), chunks, names, [measure] * len(chunks))
    failed = []
    for job in jobs:
        try:
            job.result()
        except Exception as e:  # a dead job's finished rows are in its part: merged below, kept
            failed.append(f"{job.job_id}: {str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__}")
    merge_parts(study.sweep_path)
    missing = {key for _, key in todo} - set(read_rows(study.sweep_path)["key"])
    if failed or missing:
        raise ParameterError(f"{len(failed)} of {len(jobs)} sweep jobs failed, {len(missing)} rows missing "
                             f"({'; '.join(failed[:3]) or 'no job reported an error'}); their finished rows "
                             "are kept: run again to finish the rest")  # fmt: skip
