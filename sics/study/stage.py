"""One vocabulary for the notebooks: open a stage, sweep, analyse, close it with a record.

A stage is one notebook's unit of work. `open_stage` resolves the profile, loads the data and the
dense model (cached) and prints how the numbers are made; `Stage.sweep` runs a grid (with the
plateau's magnitude rows, which every escape is measured against) and returns its `Results`,
the rows plus the per-image correctness behind them, from which `sics.analysis` computes
everything; `Stage.close` records the stage in provenance.json and prints one line with its time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .. import analysis, provenance
from ..analysis import claims
from ..analysis.summaries import PLATEAU_SCORER, paired_table, result_key
from ..paths import figures_dir
from . import bundle
from .rows import read_rows
from .study import Study, pack_results, pred_name, prepare
from .sweep import run_sweep


@dataclass
class Results:
    """Sweep rows and the per-image correctness of their selections (`analysis.result_key`)."""

    rows: pd.DataFrame
    correct: dict[tuple[str, int, int], np.ndarray]

    def summary(self) -> pd.DataFrame:
        return analysis.summarize(self.rows, self.correct)

    def paired(self, scorer: str, reference: str) -> pd.DataFrame:
        """scorer − reference per S, paired on the same images (empty if either is missing)."""
        return paired_table(self.rows, self.correct, scorer, reference)

    def claim_pairs(self) -> dict[str, pd.DataFrame]:
        """The paired comparisons the claims read (`claims.PAIRS`: C5 fake − gradient, C6
        logistic_smooth − bump)."""
        return claims.claim_pairs(self.rows, self.correct)


def saved_results(name: str, tag: str = "main") -> Results | None:
    """The `tag` rows of a study saved in figures/<name>/, with their per-image results read from
    its bundle: what another notebook drew, with no model, data or forward pass (None when
    that study has not been run, or packed, yet)."""
    found = bundle.load(name)
    if found is None:
        return None
    rows = read_rows(figures_dir(name) / "sweep.csv")
    rows = rows[(rows["ckpt_id"] == found.ckpt_id) & (rows["n_test"] == found.n_test) & (rows["tag"] == tag)]
    correct, keep = {}, []
    for i, r in enumerate(rows.itertuples()):
        got = found.get(pred_name(r.mask_hash, int(r.recovery_steps), int(r.seed)))
        if got is not None:
            correct[result_key(r)] = got
            keep.append(i)
    return Results(rows.iloc[keep].reset_index(drop=True), correct)


def load_correct(study: Study, rows: pd.DataFrame) -> dict[tuple[str, int, int], np.ndarray]:
    """Per-image correctness of every distinct selection in `rows` (from the cache)."""
    out: dict[tuple[str, int, int], np.ndarray] = {}
    for r in rows.itertuples():
        key = result_key(r)
        if key not in out:
            out[key] = study.correct_for_row(r)
    return out


_OPEN: list[Stage] = []  # stages opened and not yet closed, newest last


def pack_open() -> None:
    """Save what every open stage has finished: its calibration statistics and results bundle
    (the rows are in sweep.csv already), so a run stopped mid-notebook loses no finished result."""
    for st in list(_OPEN):
        st.study.save_calibration()
        pack_results(st.study)


@dataclass
class Stage:
    name: str
    study: Study
    t0: float = field(default_factory=time.time)
    _rows: dict = field(default_factory=dict)  # key -> seconds its evaluation took (when made)

    @property
    def profile(self) -> str:
        return self.study.profile.name

    def sweep(self, scorers, sparsities, **kwargs) -> Results:
        """`run_sweep` over `scorers` (plus the plateau's magnitude), with its per-image results."""
        names = list(dict.fromkeys([PLATEAU_SCORER, *scorers])) if scorers else []
        rows = run_sweep(self.study, names, sparsities, **kwargs)
        self._rows.update(zip(rows["key"], rows["seconds"], strict=True))
        return Results(rows, load_correct(self.study, rows))

    def close(self, **extra) -> None:
        """Record the stage (its time now, and the evaluation time of its rows whenever they
        were made), save the calibration statistics its scorers computed and pack the results
        bundle, so the outputs regenerate, and the selections rebuild, without recomputing."""
        seconds = time.time() - self.t0
        if self._rows:
            extra = {"rows": len(self._rows), "evaluation_seconds": round(float(sum(self._rows.values())), 1), **extra}
        self.study.save_calibration()
        pack_results(self.study)
        _OPEN[:] = [st for st in _OPEN if st is not self]
        provenance.record(self.study.name, self.name, **provenance.stage_info(self.study, seconds, **extra))
        print(f"[sics] {self.name}: done in {seconds:.0f} s (profile {self.profile}, "
              f"ckpt {self.study.trained.ckpt_id}, rev {provenance.git_revision()})")  # fmt: skip


def open_stage(name: str, profile: str = "auto", data: str = "", **prepare_kwargs) -> Stage:
    """Prepare the study of `profile` and say how its numbers are made."""
    t0 = time.time()
    study = prepare(profile, data or None, **prepare_kwargs)
    print(provenance.caption(study))
    origin = ("trained now" if study.trained.trained_now else
              "committed weights" if study.trained.weights_sha256 else "loaded from the cache")  # fmt: skip
    results = f"; {len(study.bundle)} results in the committed bundle" if study.bundle is not None else ""
    print(f"dense accuracy {study.dense_accuracy:.2%} on {study.n_test} test images ({origin}{results})")
    stage = Stage(name, study, t0)
    _OPEN.append(stage)
    return stage
