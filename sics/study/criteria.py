"""The criteria study's sweeps (notebook 09): every published criterion that applies to the unit
and the adaptive selector, at the main S and over the fine grid, LAMP and magnitude under global
allocation, and each non-monotone class's matched-perturbation control, all with their per-image
results."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from ..analysis import criteria as crit
from ..analysis import summarize
from ..report import figures, tables
from ..report.output import Output
from ..selection.criteria import applicable
from ..selection.scorers import c1_family, non_monotone, published
from .stage import Results, Stage

ADAPTIVE = "sics_adaptive"  # the adaptive selector, placed against the criteria


@dataclass
class CriteriaResults:
    names: list[str]  # the criteria that apply to this unit
    main: Results  # criteria, the adaptive selector and the feature classes at the main S
    matched: Results  # each non-monotone class's matched control (tag "matched"), with the classes
    global_: Results  # LAMP and magnitude under global allocation
    adaptive: Results  # the adaptive selector on the fine grid
    fine: Results  # the published criteria on the fine grid (main S included, with `fine_seeds`)
    _summaries: dict = field(default_factory=dict, repr=False)

    def summary(self) -> pd.DataFrame:
        """The main S (`analysis.summarize`): the main and global rows, at the criteria's seeds.
        The fine grid's rows stay out, since its seeds may differ (its own `fine_summary`)."""
        if "main" not in self._summaries:
            self._summaries["main"] = _summary(self.main, self.global_)
        return self._summaries["main"].copy()

    def fine_summary(self) -> pd.DataFrame:
        """The fine grid (`analysis.summarize`): the criteria's and the adaptive selector's rows."""
        if "fine" not in self._summaries:
            self._summaries["fine"] = self.fine_grid().summary()
        return self._summaries["fine"].copy()

    def fine_grid(self) -> Results:
        """The adaptive selector's and the criteria's rows over the fine grid, with their
        per-image results."""
        rows = pd.concat([self.fine.rows, self.adaptive.rows]).drop_duplicates("key").reset_index(drop=True)
        return Results(rows, {**self.fine.correct, **self.adaptive.correct})

    @property
    def published(self) -> list[str]:
        """The published criteria that apply (random, a reference, aside)."""
        return [n for n in self.names if n != "random"]

    # Notebook 09's outputs, one call each: saved under `out`, returned as shown.
    def save_main(self, out: Output) -> pd.DataFrame:
        table, shown = tables.criteria_table(crit.criteria_summary(self.summary(), [*self.names, ADAPTIVE]))
        tables.save_table(table, "criteria", out, shown=shown, title="Published criteria: accuracy (%) / difference from Π(S) (points) [95% CI]; *: significant (Holm)")  # fmt: skip
        return shown

    def save_spread(self, out: Output) -> pd.DataFrame:
        summary = self.summary()
        spread = crit.c7(summary[summary["recovery_steps"] == 0], self.published)[2]
        tables.save_table(spread, "criteria_spread", out, shown=spread.map("{:.2f}".format), title="C7: lowest and highest accuracy (%) of the published criteria per S, beside Π(S), and their spread (points)")  # fmt: skip
        return spread

    def save_fine(self, out: Output) -> pd.DataFrame:
        table, shown = tables.criteria_table(crit.criteria_summary(self.fine_summary(), [*self.names, ADAPTIVE]),
                                             compact=True)  # fmt: skip
        tables.save_table(table, "criteria_fine", out, shown=shown, title="Published criteria over the fine grid: accuracy (%) (difference from Π(S), points); *: significant (Holm over the table)")  # fmt: skip
        return shown

    def save_adaptive(self, out: Output) -> pd.DataFrame:
        """The adaptive selector against magnitude and each criterion but LAMP (per block, LAMP
        keeps magnitude's channels)."""
        grid = self.fine_grid()
        others = ["magnitude", *(n for n in self.published if n != "lamp")]
        versus = crit.versus_table(grid.rows, grid.correct, ADAPTIVE, others)
        shown = tables.versus_view(versus)
        tables.save_table(versus, "adaptive", out, shown=shown, title="The adaptive selector over the fine grid: sics_adaptive − criterion (points) [95% CI]; magnitude is Π(S); *: significant (Holm over the cells where the selections differ)")  # fmt: skip
        return shown

    def save_global(self, out: Output) -> pd.DataFrame:
        summary = self.summary()
        table, shown = tables.criteria_table(summary[summary["allocation"] == "global"].assign(p_holm=float("nan"), sig=""))
        tables.save_table(table, "criteria_global", out, shown=shown, title="LAMP and magnitude under global allocation: accuracy (%) / difference from Π(S) under global allocation [95% CI]")  # fmt: skip
        return shown

    def save_figure(self, out: Output, feature_classes) -> None:
        summary = self.summary()
        classes = summary[summary["scorer"].isin(feature_classes) & (summary["allocation"] == "block")]
        shown = crit.criteria_summary(self.fine_summary(), [*self.names, ADAPTIVE])
        figures.save_figure(figures.figure_criteria(shown, classes), "fig_criteria", out)

    def save_matched(self, out: Output) -> pd.DataFrame:
        matched = crit.matched_table(self.matched.rows, self.matched.correct, non_monotone())
        tables.save_table(matched, "matched", out, shown=tables.matched_view(matched), title="Escape beyond the matched control: class − matched_random (points) [95% CI, seed-paired]; *: significant (Holm)")  # fmt: skip
        return tables.matched_view(matched)

    def save_ledger(self, out: Output, margin: float, sparsities) -> pd.DataFrame:
        """C1 with its measured part, and C7: this study's claims ledger (`claims_criteria`)."""
        ledger = crit.ledger(self.summary(), self.published, c1_family(), margin=margin, sparsities=sparsities)
        tables.save_table(ledger, "claims_criteria", out, shown=tables.claims_table(ledger), title="Claims ledger: C1 with its measured part, and C7 (criteria study)")  # fmt: skip
        return ledger[["claim", "paper", "measured", "verdict"]]


def _summary(*parts: Results) -> pd.DataFrame:
    rows = pd.concat([r.rows for r in parts]).drop_duplicates("key")
    return summarize(rows, {k: v for r in parts for k, v in r.correct.items()})


def sweep_matched(stage: Stage, sparsities, n_seeds: int | None) -> list[Results]:
    """Each non-monotone class's matched-perturbation control (tag "matched"), one sweep a class."""
    return [stage.sweep(["matched_random"], sparsities, n_seeds=n_seeds, tag="matched",
                        params={"matched_random": {"of": cls}}) for cls in non_monotone()]  # fmt: skip


def run_criteria(stage: Stage, sparsities, feature_classes, n_seeds: int | None = None) -> CriteriaResults:
    """The study's sweeps, in order of value: criteria, adaptive, matched controls, global, fine grid.
    `n_seeds` (None: the profile's `criteria_seeds`, else its main-grid seeds) at the main S."""
    names = applicable(published(), stage.study.selection.stats)
    n_seeds = n_seeds or stage.study.profile.criteria_seeds
    main = stage.sweep([*names, ADAPTIVE, *feature_classes], sparsities, n_seeds=n_seeds)
    matched = sweep_matched(stage, sparsities, n_seeds)
    rows = pd.concat([main.rows, *(m.rows for m in matched)]).drop_duplicates("key").reset_index(drop=True)
    correct = {k: v for r in (main, *matched) for k, v in r.correct.items()}
    global_ = stage.sweep(["lamp", "magnitude"], sparsities, n_seeds=n_seeds, allocation="global")
    adaptive = stage.fine_sweep([ADAPTIVE])
    fine = stage.fine_sweep(names)
    return CriteriaResults(names, main, Results(rows, correct), global_, adaptive, fine)
