"""(scorer x sparsity x seed) grids -> tidy rows, appended to sweep.csv as each finishes.

Every row is keyed by its full configuration (checkpoint, test set, calibration-set size, scorer
parameters and code version, S, seed, allocation, recovery). A sweep skips keys already in
`sweep.csv`, so an interrupted `make paper` resumes where it stopped and re-running a notebook
only redraws; bumping a scorer's `version` after fixing it recomputes its rows. The rows are
stored by `sics.study.rows`, the per-image results by the Study (`sics.study.study`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..analysis.summaries import Correct, result_key
from ..errors import ParameterError
from ..files import stable_hash
from ..progress import bar as progress_bar
from ..provenance import git_revision
from ..selection.complexity import kappa_hat
from ..selection.scorers import check_scorers, get_scorer
from ..selection.select import check_sparsity, jaccard, kappa_inputs, mask_hash, overlap
from . import executor
from .rows import append_row, file_size, merge_parts, read_rows
from .study import Study, is_default_unit


def scorer_version(name: str) -> int:
    """The scorer's code version (`register(..., version=)`): part of row keys."""
    return get_scorer(name).version


def seeds_for(scorer: str, n_seeds: int) -> list[int]:
    """Deterministic scorers run once (seed 0); stochastic ones over n_seeds seeds."""
    return list(range(n_seeds)) if get_scorer(scorer).stochastic else [0]


def row_key(study: Study, scorer: str, S: float, seed: int, params: dict, allocation: str,
            recovery_steps: int) -> str:  # fmt: skip
    """The row's configuration, hashed. The unit, and fp32 decisions, enter only where they differ
    from the paper's setting (MLP channels, decisions in the evaluation precision), so the keys of
    the committed rows do not depend on fields they never had."""
    config = dict(ckpt=study.trained.ckpt_id, n_test=study.n_test, scorer=scorer,
                  params=get_scorer(scorer).params(params), S=round(S, 6), seed=seed,
                  allocation=allocation, recovery=recovery_steps,
                  n_calib=study.profile.n_calib, version=scorer_version(scorer))  # fmt: skip
    if not is_default_unit(study.unit):
        config["unit"] = {"name": study.unit.name, **study.unit.key()}
    if study.profile.fp32_decisions:
        config["fp32_decisions"] = True
    return stable_hash(config)


def measure(study: Study, sc: str, S: float, seed: int, p: dict, allocation: str, recovery_steps: int, *,
            tag: str, key: str, rev: str) -> tuple[dict, np.ndarray]:  # fmt: skip
    """One row: select with scorer `sc` at S, evaluate (or look up) the selection, describe it.
    Returns (the row, its per-image correctness)."""
    t0 = time.time()
    scores, masks = study.masks(sc, S, seed, p, allocation)
    ref = study.selection.magnitude(S, allocation)
    correct = study.correct(masks, recovery_steps, seed)
    k_hat, share = kappa_hat(*kappa_inputs(scores, study.selection.stats, allocation))
    row = dict(
        scorer=sc, kappa=get_scorer(sc).kappa, kappa_hat=k_hat, hf_share=round(share, 4),
        sparsity=S, seed=seed, accuracy=float(correct.mean()), n_test=study.n_test,
        mask_hash=mask_hash(masks), overlap_magnitude=overlap(masks, ref),
        jaccard_magnitude=jaccard(masks, ref), kept=int(sum(m.sum() for m in masks)),
        allocation=allocation, recovery_steps=recovery_steps,
        params=json.dumps(get_scorer(sc).params(p), sort_keys=True), tag=tag,
        profile=study.profile.name, ckpt_id=study.trained.ckpt_id, data=study.inputs.source,
        device=str(study.device), git_rev=rev, seconds=round(time.time() - t0, 3), key=key,
        n_calib=study.profile.n_calib, scorer_version=scorer_version(sc), unit=study.unit.tag,
        precision=study.where.precision_label,
    )  # fmt: skip
    return row, correct


def _run_here(study: Study, todo: list, total: int, params: dict, allocation: str, recovery_steps: int,
              tag: str, rev: str) -> Correct:  # fmt: skip
    """Evaluate the pending rows in this process, appending each to sweep.csv as it finishes;
    returns their per-image results (`result_key`)."""
    path = study.sweep_path
    seen, have, measured = file_size(path), set(), {}
    bar = progress_bar(desc=f"sweep {tag}", total=total, initial=total - len(todo), unit="row",
                       disable=not study.progress or not todo)  # fmt: skip
    for (sc, S, seed), key in todo:
        if file_size(path) != seen:  # another run appended rows meanwhile: skip those it finished
            seen = file_size(path)
            have = set(read_rows(path)["key"])
        if key in have:
            bar.update()
            continue
        row, correct = measure(study, sc, S, seed, params.get(sc, {}), allocation, recovery_steps,
                               tag=tag, key=key, rev=rev)  # fmt: skip
        seen = append_row(path, row)
        measured[result_key(SimpleNamespace(**row))] = correct
        bar.update()
    bar.close()
    return measured


def run_sweep(study: Study, scorers: Iterable[str], sparsities: Iterable[float], **kwargs) -> pd.DataFrame:
    """Evaluate every (scorer, S, seed); return this grid's rows (new and previously finished).
    Keywords as `sweep_grid`'s."""
    return sweep_grid(study, scorers, sparsities, **kwargs)[0]


def sweep_grid(
    study: Study,
    scorers: Iterable[str],
    sparsities: Iterable[float],
    *,
    n_seeds: int | None = None,
    params: dict[str, dict] | None = None,
    allocation: str = "block",
    recovery_steps: int = 0,
    tag: str | None = None,
) -> tuple[pd.DataFrame, Correct]:
    """Evaluate every (scorer, S, seed); return this grid's rows (new and previously finished) and
    the per-image results this process measured or looked up for its new rows (`result_key`).

    `tag` labels the rows; by default "main" for the protocol's settings and "variant" for any
    other allocation, recovery or scorer parameters (so tables of the paper never mix them).
    """
    scorers = check_scorers(scorers)
    sparsities = [check_sparsity(s) for s in sparsities]
    if not sparsities:
        raise ParameterError("the sparsity list is empty; give values in [0, 1)")
    params = params or {}
    for name in params:
        get_scorer(name).params(params[name])
    n_seeds = study.profile.seeds(study.unit.name) if n_seeds is None else n_seeds
    if tag is None:
        default = all(get_scorer(n).params(p) == get_scorer(n).params() for n, p in params.items())
        tag = "main" if allocation == "block" and not recovery_steps and default else "variant"
    path = study.sweep_path
    merge_parts(path)  # rows of jobs that ended without their merge (`sics.study.executor`)
    have = set(read_rows(path)["key"])
    jobs = [(sc, S, seed) for S in sparsities for sc in scorers for seed in seeds_for(sc, n_seeds)]
    keys = [row_key(study, sc, S, seed, params.get(sc, {}), allocation, recovery_steps) for sc, S, seed in jobs]
    todo = [(job, key) for job, key in zip(jobs, keys, strict=True) if key not in have]
    rev, kind, measured = git_revision(), executor.chosen(), {}
    if kind != "inline" and todo:  # (the jobs' results reach this process through the cache)
        executor.run_jobs(study, todo, measure, params=params, allocation=allocation, recovery_steps=recovery_steps,
                          tag=tag, rev=rev, kind=kind)  # fmt: skip
    else:
        measured = _run_here(study, todo, len(jobs), params, allocation, recovery_steps, tag, rev)
    done = read_rows(path)  # typed as a reader of sweep.csv sees it, with any other run's rows
    result = done[done["key"].isin(set(keys))].copy()
    return result.reset_index(drop=True), measured
