"""Ablations reviewers ask for, each a variant of the main sweep with its own small table.

- allocation: one global ranking over all blocks instead of per-block top-k;
- envelope: non-aligned features (E ≡ 1) instead of the envelope centred on the cut;
- axis: φ read at the channel index (no magnitude information) instead of at its rank;
- lambda: the amplitude λ of the non-monotone features;
- recovery: a short recovery fine-tuning after pruning (beyond the paper's one-shot).

Escape is always measured against the plateau of the same variant (magnitude under the same
allocation and recovery), on the same test images.
"""

from __future__ import annotations

import pandas as pd

from .errors import ParameterError
from .report import _fmt_signed, summarize
from .scorers import params_for
from .sweep import Study, run_sweep

ABLATION_SCORERS = ("magnitude", "logistic_smooth", "tent_smooth", "sine_smooth", "logistic_raw",
                    "tent_raw", "fake_nonmonotone")  # fmt: skip


def variants(name: str, study: Study) -> dict[str, dict]:
    """label -> sweep settings (allocation, recovery_steps, scorer parameter overrides)."""
    table = {
        "allocation": {"per-block (default)": {}, "global": {"allocation": "global"}},
        "envelope": {"aligned (default)": {}, "non-aligned, E ≡ 1": {"params": {"aligned": False}}},
        "axis": {"rank (default)": {}, "index": {"params": {"axis": "index"}}},
        "lambda": {"λ=0.1": {"params": {"lam": 0.1}}, "λ=0.2 (default)": {},
                   "λ=0.4": {"params": {"lam": 0.4}}},  # fmt: skip
        "recovery": {"one-shot (default)": {},
                     f"{study.profile.recovery_steps} recovery steps": {"recovery_steps": study.profile.recovery_steps}},  # fmt: skip
    }
    if name not in table:
        raise ParameterError(f"unknown ablation {name!r}; valid: {', '.join(table)}")
    return table[name]


ABLATIONS = ("allocation", "envelope", "axis", "lambda", "recovery")


def run_ablation(study: Study, name: str, sparsities, scorers=ABLATION_SCORERS,
                 n_seeds: int | None = None) -> pd.DataFrame:  # fmt: skip
    """Summaries of every variant of one ablation, with a `variant` column."""
    n_seeds = study.profile.ablation_seeds if n_seeds is None else n_seeds
    out = []
    for label, v in variants(name, study).items():
        chosen = list(scorers)
        if name == "recovery":  # recovery fine-tunes every pruned model: keep it to the key classes
            chosen = [s for s in chosen if s in ("magnitude", "logistic_smooth", "logistic_raw")]
        rows = run_sweep(study, chosen, sparsities, n_seeds=n_seeds,
                         params=params_for(chosen, **v.get("params", {})),
                         allocation=v.get("allocation", "block"),
                         recovery_steps=v.get("recovery_steps", 0), tag=None if not v else f"ablation-{name}")  # fmt: skip
        out.append(summarize(study, rows).assign(ablation=name, variant=label))
    return pd.concat(out, ignore_index=True)


def ablation_table(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numeric csv table, shown table): escape [95% CI] per scorer and variant, S as columns."""
    cols = ["ablation", "variant", "scorer", "kappa", "sparsity", "n_seeds", "plateau", "acc",
            "escape", "escape_low", "escape_high", "escape_p", "overlap_magnitude"]  # fmt: skip
    df = summary[cols].copy()
    shown = df.assign(cell=[_fmt_signed(r.escape, r.escape_low, r.escape_high) for r in df.itertuples()])
    plateau = df[df["scorer"] == "magnitude"].assign(
        scorer="Π(S) accuracy", kappa="0", cell=lambda d: d["plateau"].map("{:.1f}".format))
    shown = pd.concat([plateau, shown[shown["scorer"] != "magnitude"]], ignore_index=True)
    wide = shown.pivot_table(index=["scorer", "kappa", "variant"], columns="sparsity", values="cell",
                             aggfunc="first", sort=False)  # fmt: skip
    wide.columns = [f"S={c:g}" for c in wide.columns]
    return df, wide.reset_index()
