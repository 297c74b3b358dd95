"""The training runs of a study as the recipe-level analysis reads them, and its outputs.

Run 0 is the study at figures/<name>/, run k >= 1 at figures/<name>/runs/<k>/ (`sics.paths.run_dir`);
each has its rows (`sweep.csv`) and per-image results (`results.zip`). `recipe_outputs` writes,
into figures/<name>/runs/: the recipe-level ledger (`claims.*`), the variance table
(`variance.*`), the power of each rule at more runs (`power.*`), the dense accuracies
(`dense.*`) and the figure of every run's escape beside the recipe's (`fig_runs.*`), and each
run's own ledger into its folder. No model and no data: it reads committed files only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..analysis import criteria as crit
from ..analysis import runs as runs_mod
from ..analysis import summarize
from ..analysis.claims import claim_pairs, ledger, merged
from ..paths import figures_root, run_name
from ..report import figures, tables
from ..report.output import Output
from ..selection.scorers import KV_KIND, c1_family, published
from .stage import Results, saved_results


def studies_with_runs(profile: str) -> list[str]:
    """The studies of a profile's family (its own, its tokens', its MoE experts', the other
    architectures beside a ViT) whose folder holds training runs beyond run 0."""
    from ..config import ARCHITECTURES, resolve_profile

    vit = resolve_profile(profile).name
    names = [vit, f"{vit}-tokens", f"{vit}-experts", *(spec.get(vit, arch) for arch, spec in ARCHITECTURES.items())]
    return [n for n in names if any(k > 0 for k in run_numbers(n))]


def run_numbers(name: str) -> list[int]:
    """The runs of study `name` that have results: 0 (when committed) and every runs/<k>/ with a bundle."""
    root = figures_root() / name
    found = [0] if (root / "results.zip").exists() else []
    found += sorted(int(p.parent.name) for p in root.glob("runs/*/results.zip") if p.parent.name.isdigit())
    return found


def saved_runs(name: str, sparsities) -> dict[int, Results]:
    """Every run's main rows at `sparsities` (per-block allocation, no recovery) with their
    per-image results, from the committed files."""
    out = {}
    S = {round(float(s), 6) for s in sparsities}
    for k in run_numbers(name):
        res = saved_results(run_name(name, k))
        if res is None:
            continue
        r = res.rows
        keep = (r["allocation"] == "block") & (r["recovery_steps"] == 0) & r["sparsity"].round(6).isin(S)
        out[k] = Results(r[keep].reset_index(drop=True), res.correct)
    return out


def _caption(name: str, runs: dict[int, Results]) -> str:
    ckpts = ",".join(str(r.rows["ckpt_id"].iloc[0]) for r in runs.values())
    revs = sorted({str(r.rows["git_rev"].iloc[-1]) for r in runs.values()})
    seeds = "/".join(str(int(r.rows.groupby(["scorer", "sparsity"])["seed"].nunique().max())) for r in runs.values())
    return (f"study={name} | recipe-level: {len(runs)} training runs ({','.join(map(str, runs))}), each weighted "
            f"equally, seeds per cell up to {seeds} | ckpts={ckpts} | rev={','.join(revs)}")  # fmt: skip


def recipe_outputs(name: str, sparsities, margin: float = 0.5) -> pd.DataFrame | None:
    """Write the recipe-level outputs of study `name` (module docstring); return its ledger, or
    None where fewer than two runs have results (one network says nothing about a recipe)."""
    runs = saved_runs(name, sparsities)
    if len(runs) < 2:
        return None
    pairs = {k: (r.rows, r.correct) for k, r in runs.items()}
    per_summary = {k: summarize(rows, correct) for k, (rows, correct) in pairs.items()}
    per_run = {k: merged(ledger(per_summary[k], claim_pairs(*pairs[k]), margin=margin),
                         _criteria_ledger(per_summary[k], margin, sparsities)) for k in pairs}  # fmt: skip
    summary = runs_mod.summarize_runs(pairs)
    led = runs_mod.recipe_ledger(pairs, per_run, summary, margin=margin)
    recipe_crit = _criteria_ledger(summary, margin, sparsities)
    if recipe_crit is not None:
        recipe_crit = runs_mod.with_holds(recipe_crit, per_run)
    led = merged(led, recipe_crit)
    var = pd.concat([runs_mod.variance_table(pairs).assign(claim=""), runs_mod.pair_variance(pairs)],
                    ignore_index=True)
    seeds = int(min(r.rows.groupby(["scorer", "sparsity"])["seed"].nunique().max() for r in runs.values()))
    power = runs_mod.recipe_power(var, summary, seeds=seeds, margin=margin, criteria=_criteria_names(summary))
    needed = runs_mod.runs_needed(power).set_index("claim")["runs_needed"]
    led["runs_needed"] = led["claim"].map(needed)
    out = Output(figures_root() / name / "runs", _caption(name, runs))
    tables.save_table(led, "claims", out, shown=tables.claims_table(led.assign(
        verdict=[f"{v} ({h})" for v, h in zip(led["verdict"], led["holds_in"])])),
        title=f"Claims ledger of the recipe: {len(runs)} training runs; (k/K): the runs whose own ledger reads the same")  # fmt: skip
    for k, lg in per_run.items():
        if k:  # run 0's own ledger is the study's claims.csv, made by its notebooks
            tables.save_table(lg, "claims", Output(figures_root() / run_name(name, k), out.caption),
                              shown=tables.claims_table(lg), title=f"Claims ledger of run {k}")  # fmt: skip
    tables.save_table(var, "variance", out, shown=var.round(2),
                      title="Where a recipe-level escape's uncertainty comes from (points): between runs, seeds within a run, shared test images; `claim`: the paired differences C5 and C6 read")  # fmt: skip
    tables.save_table(power, "power", out, shown=power.pivot_table(index=["claim", "verdict"], columns="runs",
                                                                   values="share").round(2).reset_index(),
                      title=f"How often each claim's rule reaches each verdict with K runs of {seeds} seeds, if the measured escapes were true")  # fmt: skip
    figures.save_figure(figures.figure_runs(per_summary, summary), "fig_runs", out)
    recs = pd.DataFrame(run_records(name))
    if len(recs) >= 2:  # the study whose folder holds the weights (not the tokens', which share them)
        acc = recs["test_accuracy"] * 100
        shown = recs.assign(test_accuracy=acc.map("{:.2f}".format))
        shown.loc[len(shown)] = dict(run="all", ckpt_id=f"{len(recs)} runs", train_seed="",
                                     test_accuracy=f"{acc.mean():.2f} ± {acc.std(ddof=1):.2f} (SD)",
                                     recipe_hash=", ".join(sorted(set(recs["recipe_hash"].astype(str)) - {""})))  # fmt: skip
        tables.save_table(recs, "dense", out, shown=shown,
                          title="Dense test accuracy (%) of every training run of the recipe, and its spread")  # fmt: skip
    return led


def _criteria_names(summary: pd.DataFrame) -> tuple[list[str], list[str]] | None:
    """(the published criteria C7 reads, the family C1 measures) that `summary` holds (the channel
    units', or kvpress's for the KV unit); None where it holds no criteria study."""
    have = set(summary["scorer"])
    kind = KV_KIND if any(n in have for n in published(KV_KIND)) else None
    names = [n for n in published(kind) if n != "random" and n in have]
    if not names or not set(c1_family(kind)) & have:
        return None
    return names, [n for n in c1_family(kind) if n in have]


def _criteria_ledger(summary: pd.DataFrame, margin: float, sparsities) -> pd.DataFrame | None:
    """C1 (both parts) and C7 from a summary holding the published criteria, else None."""
    found = _criteria_names(summary)
    return None if found is None else crit.ledger(summary, *found, margin=margin, sparsities=sparsities)


def run_records(name: str) -> list[dict]:
    """Each committed run's weights record (run, checkpoint, train seed, test accuracy, recipe hash)."""
    out = []
    for k in run_numbers(name):
        meta_path: Path = figures_root() / run_name(name, k) / "weights.json"
        if meta_path.exists():
            meta = json.loads(meta_path.read_text())
            out.append(dict(run=k, ckpt_id=meta["ckpt_id"], train_seed=meta["training_fields"]["train_seed"],
                            test_accuracy=meta["test_accuracy"], recipe_hash=meta.get("recipe_hash", "")))  # fmt: skip
    return out
