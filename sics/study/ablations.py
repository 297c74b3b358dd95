"""Ablations reviewers ask for, each a variant of the main sweep with its own small table.

- allocation: one global ranking over all blocks instead of per-block top-k (the features are
  then read along the global magnitude rank, with the envelope centred on the global cut);
- envelope: non-aligned features (E ≡ 1) instead of the envelope centred on the cut;
- axis: φ read at the channel index (no magnitude information) instead of at its rank;
- lambda: the amplitude λ of the non-monotone features;
- recovery: a short recovery fine-tuning after pruning (beyond the paper's one-shot).

Escape is always measured against the plateau of the same variant (magnitude under the same
allocation and recovery), on the same test images.
"""

from __future__ import annotations

import pandas as pd

from ..errors import ParameterError
from ..selection.scorers import feature_classes, kappa0, params_for
from .stage import Stage


def ablation_scorers() -> list[str]:
    """The plateau (magnitude) and every non-κ=0 feature class, as registered."""
    return [kappa0()[0], *(n for n in feature_classes() if n not in kappa0())]


RECOVERY_SCORERS = ("magnitude", "logistic_smooth", "logistic_raw")  # recovery fine-tunes each model


def variants(name: str, recovery_steps: int) -> dict[str, dict]:
    """label -> sweep settings (allocation, recovery_steps, scorer parameter overrides)."""
    table = {
        "allocation": {"per-block (default)": {}, "global": {"allocation": "global"}},
        "envelope": {"aligned (default)": {}, "non-aligned, E ≡ 1": {"params": {"aligned": False}}},
        "axis": {"rank (default)": {}, "index": {"params": {"axis": "index"}}},
        "lambda": {"λ=0.1": {"params": {"lam": 0.1}}, "λ=0.2 (default)": {},
                   "λ=0.4": {"params": {"lam": 0.4}}},  # fmt: skip
        "recovery": {"one-shot (default)": {},
                     f"{recovery_steps} recovery steps": {"recovery_steps": recovery_steps}},
    }
    if name not in table:
        raise ParameterError(f"unknown ablation {name!r}; valid: {', '.join(table)}")
    return table[name]


ABLATIONS = ("allocation", "envelope", "axis", "lambda", "recovery")


def run_ablation(stage: Stage, name: str, sparsities, scorers=None,
                 n_seeds: int | None = None) -> pd.DataFrame:  # fmt: skip
    """Summaries of every variant of one ablation, with `ablation` and `variant` columns."""
    study = stage.study
    n_seeds = study.profile.ablation_seeds if n_seeds is None else n_seeds
    out = []
    for label, v in variants(name, study.profile.recovery_steps).items():
        chosen = list(scorers or ablation_scorers())
        if name == "recovery":
            chosen = [s for s in chosen if s in RECOVERY_SCORERS]
        res = stage.sweep(chosen, sparsities, n_seeds=n_seeds,
                          params=params_for(chosen, **v.get("params", {})),
                          allocation=v.get("allocation", "block"),
                          recovery_steps=v.get("recovery_steps", 0),
                          tag=None if not v else f"ablation-{name}")  # fmt: skip
        out.append(res.summary().assign(ablation=name, variant=label))
    return pd.concat(out, ignore_index=True)
