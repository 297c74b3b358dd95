"""The token study's comparison across importances (notebook 07): the main importance's study
beside the other importances, each a stage of its own with its own table, and the MLP channels'
saved study of the same model, as the panels of one figure."""

from __future__ import annotations

import pandas as pd

from ..report import figures, tables
from .stage import Stage, saved_results

TITLE = "Token pruning ({}): accuracy (%) / escape (points) [95% CI]; *: significant (Holm)"


def save_importance_panels(stage: Stage, summary: pd.DataFrame, importances: list[str], block: int, names,
                           sparsities, n_seeds: int | None = None) -> dict[str, pd.DataFrame | None]:  # fmt: skip
    """Sweep every importance but the first (the main study's, `summary`) as a variant stage,
    save its table there, and draw every panel (the MLP channels' saved study, where there is one,
    first) into the main stage's `fig_units`. Returns the panels' summaries by label."""
    channels = saved_results(stage.study.profile.name)
    panels = {"ViT MLP channels": channels.summary() if channels else None, f"tokens ({importances[0]})": summary}
    for importance in importances[1:]:
        variant, other = stage.variant(importance, {"block": block, "importance": importance}, names, sparsities,
                                       n_seeds=n_seeds, tag=f"importance-{importance}")  # fmt: skip
        panels[f"tokens ({importance})"] = variant.summary()
        table, shown = tables.table2(panels[f"tokens ({importance})"])
        tables.save_table(table, f"table2_{importance}", other.out, shown=shown, title=TITLE.format(importance))
    figures.save_figure(figures.figure_units(panels), "fig_units", stage.out)
    return panels
