"""The criteria study's sweeps (notebook 09): every published criterion that applies to the unit
and the adaptive selector, at the main S and over the fine grid, LAMP and magnitude under global
allocation, and each non-monotone class's matched-perturbation control, all with their per-image
results."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..analysis import summarize
from ..selection.criteria import applicable
from ..selection.scorers import non_monotone, published
from .stage import Results, Stage


@dataclass
class CriteriaResults:
    names: list[str]  # the criteria that apply to this unit
    main: Results  # criteria, the adaptive selector and the feature classes at the main S
    matched: Results  # each non-monotone class's matched control (tag "matched"), with the classes
    global_: Results  # LAMP and magnitude under global allocation
    adaptive: Results  # the adaptive selector on the fine grid
    fine: Results  # the published criteria on the fine grid (main S included, with `fine_seeds`)

    def summary(self) -> pd.DataFrame:
        """The main S (`analysis.summarize`): the main and global rows, at the criteria's seeds.
        The fine grid's rows stay out, since its seeds may differ (its own `fine_summary`)."""
        return _summary(self.main, self.global_)

    def fine_summary(self) -> pd.DataFrame:
        """The fine grid (`analysis.summarize`): the criteria's and the adaptive selector's rows."""
        return self.fine_grid().summary()

    def fine_grid(self) -> Results:
        """The adaptive selector's and the criteria's rows over the fine grid, with their
        per-image results."""
        rows = pd.concat([self.fine.rows, self.adaptive.rows]).drop_duplicates("key").reset_index(drop=True)
        return Results(rows, {**self.fine.correct, **self.adaptive.correct})


def _summary(*parts: Results) -> pd.DataFrame:
    rows = pd.concat([r.rows for r in parts]).drop_duplicates("key")
    return summarize(rows, {k: v for r in parts for k, v in r.correct.items()})


def run_criteria(stage: Stage, sparsities, feature_classes, n_seeds: int | None = None) -> CriteriaResults:
    """The study's sweeps, in order of value: criteria, adaptive, matched controls, global, fine grid.
    `n_seeds` (None: the profile's `criteria_seeds`, else its main-grid seeds) at the main S."""
    names = applicable(published(), stage.study.selection.stats)
    n_seeds = n_seeds or stage.study.profile.criteria_seeds
    main = stage.sweep([*names, "sics_adaptive", *feature_classes], sparsities, n_seeds=n_seeds)
    matched = [stage.sweep(["matched_random"], sparsities, n_seeds=n_seeds, tag="matched",
                           params={"matched_random": {"of": cls}}) for cls in non_monotone()]  # fmt: skip
    rows = pd.concat([main.rows, *(m.rows for m in matched)]).drop_duplicates("key").reset_index(drop=True)
    correct = {k: v for r in (main, *matched) for k, v in r.correct.items()}
    global_ = stage.sweep(["lamp", "magnitude"], sparsities, n_seeds=n_seeds, allocation="global")
    adaptive = stage.fine_sweep(["sics_adaptive"])
    fine = stage.fine_sweep(names)
    return CriteriaResults(names, main, Results(rows, correct), global_, adaptive, fine)
