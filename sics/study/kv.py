"""Notebook 11's KV-only outputs, one call each: kvpress's criteria against the plateau with
their C1/C7 ledger, and each non-monotone class against its matched control (the same tables as
the criteria study's, notebook 09, for a unit whose criteria are kvpress's)."""

from __future__ import annotations

import pandas as pd

from ..analysis import criteria as crit
from ..report import tables
from ..selection.scorers import KV_KIND, c1_family, non_monotone, published
from .criteria import sweep_matched
from .stage import Results, Stage


def save_criteria(stage: Stage, results: Results, sparsities, margin: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """kvpress's criteria at `sparsities` (deterministic: one seed) beside the main rows
    `results`: their table and the C1/C7 ledger saved; returns (the table, the ledger) as shown."""
    kv = published(KV_KIND)
    found = stage.sweep(kv, sparsities, n_seeds=1)
    rows = pd.concat([results.rows, found.rows]).drop_duplicates("key").reset_index(drop=True)
    summary = Results(rows, {**results.correct, **found.correct}).summary()
    table, shown = tables.criteria_table(crit.criteria_summary(summary, kv))
    tables.save_table(table, "criteria", stage.out, shown=shown, title="kvpress criteria: next-byte accuracy (%) / difference from Π(S) (points) [95% CI, clustered by context]; *: significant (Holm)")  # fmt: skip
    ledger = crit.ledger(summary, kv, c1_family(KV_KIND), margin=margin, sparsities=sparsities)
    tables.save_table(ledger, "claims_criteria", stage.out, shown=tables.claims_table(ledger), title="Claims ledger: C1 with its measured part, and C7 (kvpress criteria)")  # fmt: skip
    return shown, ledger[["claim", "paper", "measured", "verdict"]]


def save_matched(stage: Stage, results: Results, sparsities, n_seeds: int | None = None) -> pd.DataFrame:
    """Each non-monotone class of `results` against its matched-perturbation control, seed-paired."""
    matched = sweep_matched(stage, sparsities, n_seeds)
    rows = pd.concat([results.rows, *(m.rows for m in matched)]).drop_duplicates("key").reset_index(drop=True)
    table = crit.matched_table(rows, {k: v for r in (results, *matched) for k, v in r.correct.items()}, non_monotone())
    tables.save_table(table, "matched", stage.out, shown=tables.matched_view(table), title="Escape beyond the matched control: class − matched_random (points) [95% CI, seed-paired]; *: significant (Holm)")  # fmt: skip
    return tables.matched_view(table)
