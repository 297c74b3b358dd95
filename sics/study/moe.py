"""Notebook 12's MoE-only outputs: the MoEfied model at each k (router's and oracle's routing
against dense), the router's recall of the oracle, the experts' load and the MLP FLOPs saved."""

from __future__ import annotations

import pandas as pd

from ..config import resolve_profile
from ..report import tables
from ..selection.select import keep_count
from .stage import Results, Stage, open_stage

FINE_STEP = 0.05  # the coarsest fine grid: every row evaluates every token of every image


def open_moe(name: str, profile: str, data: str, n_experts: int, n_images: int, run: int = 0) -> Stage:
    """The experts study of `profile`'s training run `run` on `n_images` test images (a seeded
    subset; the profile's whole test set where it has fewer)."""
    p = resolve_profile(profile)
    n = min(n_images, p.n_test) if p.n_test else n_images
    return open_stage(name, p.name, data, unit="experts", unit_params={"n_experts": n_experts}, n_test=n,
                      train_seed=run)  # fmt: skip


def fine_grid(stage: Stage, grid=()) -> list[float]:
    """`grid`, else the profile's fine grid at steps of at least `FINE_STEP`."""
    if grid:
        return [float(s) for s in grid]
    full = stage.study.profile.fine_sparsities()
    every = max(1, round(FINE_STEP / (full[1] - full[0]))) if len(full) > 1 else 1
    return full[::every]


def save_routing(stage: Stage, results: Results, sparsities) -> pd.DataFrame:
    """One row per S of the main grid: k of E experts run, next-to-dense accuracies, recall, load
    balance (the least and most loaded expert's share of tokens, over blocks) and FLOPs saved."""
    study, unit = stage.study, stage.study.unit
    E, H = unit.n_experts, study.profile.model.mlp_hidden
    summary = results.summary().set_index(["scorer", "sparsity"])
    out = []
    for S in sparsities:
        k = keep_count(S, E)
        recall, load = unit.routing(study.selection.inputs, k)
        acc = {name: summary.loc[(name, S), "acc"] if (name, S) in summary.index else float("nan")
               for name in ("magnitude", "moe_oracle", "random")}  # fmt: skip
        out.append(dict(sparsity=S, k=k, experts=E, effective_S=round(1 - k / E, 4),
                        dense=round(study.dense_accuracy * 100, 2), router=round(acc["magnitude"], 2),
                        oracle=round(acc["moe_oracle"], 2), random_router=round(acc["random"], 2),
                        router_recall=round(float(recall.mean()), 3), recall_by_block=" ".join(f"{r:.2f}" for r in recall),
                        load_min=round(float(load.min()), 3), load_max=round(float(load.max()), 3), load_even=round(k / E, 3),
                        mlp_flops_saved=round(1 - k / E, 4), router_flops=round(E / (2 * H), 4)))  # fmt: skip
    table = pd.DataFrame(out)
    tables.save_table(table, "routing", stage.out, title="MoEfied model at each k: accuracy (%) with the router's, the oracle's and a random routing against dense; the router's recall of the oracle's top k (test tokens); load: the least and most loaded expert's share of tokens (even: k/E); MLP FLOPs saved (1 − k/E), the router's own cost as a share of the dense MLP's")  # fmt: skip
    return table
