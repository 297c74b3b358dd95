"""The GPU reference run, estimated stage by stage: rows, distinct evaluations, FLOPs and time.

    python tools/gpu_estimate.py [--profile scratch] [--mfu 0.25] [--peak 989]

No GPU is needed. The grids are those of notebooks 02-07 with their default parameters and the
profile's seeds, fine grid and ablations; the selections are made on synthetic weights of the
profile's geometry (log-normal magnitudes, random Taylor importances per seed), so the count of
distinct evaluations (identical selections are evaluated once) is that of a model like it. FLOPs
come from torch's FLOP counter on the profile's model; time is FLOPs / (MFU x peak), plus the
per-row selection work measured here on this CPU (an upper bound for a GPU machine's CPU) and
the fixed costs named in the table. It prints one line per stage.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np

from sics.config import resolve_profile
from sics.models import build_model, flops_per_image, geometry
from sics.paths import notebooks_dir
from sics.selection.complexity import kappa_hat
from sics.selection.groups import BlockStats, with_taylor
from sics.selection.scorers import baselines, feature_classes, get_scorer, params_for
from sics.selection.select import kappa_inputs, mask_hash, score_and_select
from sics.study.ablations import ABLATIONS, RECOVERY_SCORERS, ablation_scorers, variants
from sics.study.sweep import seeds_for


def notebook_parameters(name: str) -> dict:
    """The default parameters of a notebook (its cell tagged `parameters`)."""
    nb = json.loads((notebooks_dir() / f"{name}.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    out: dict = {}
    exec("".join(cell["source"]), {}, out)
    return out


def grids(p) -> dict[str, list[tuple]]:
    """stage -> sweep calls (scorers, sparsities, n_seeds, params, allocation, recovery steps)."""
    every = [*feature_classes(), *baselines()]
    main = notebook_parameters("02_plateau")["sparsities"]
    fine = p.fine_sparsities()
    abl_s = p.ablation_sparsities or main
    ablations = []
    for name in ABLATIONS:
        for v in variants(name, p.recovery_steps).values():
            chosen = [s for s in ablation_scorers() if name != "recovery" or s in RECOVERY_SCORERS]
            ablations.append((chosen, abl_s, p.ablation_seeds, params_for(chosen, **v.get("params", {})),
                              v.get("allocation", "block"), v.get("recovery_steps", 0)))  # fmt: skip
    return {
        "02-03": [(notebook_parameters("02_plateau")["scorers"], main, p.n_seeds, {}, "block", 0),
                  (every, main, p.n_seeds, {}, "block", 0)],
        "04-05": [(notebook_parameters("04_fake_nonmonotone")["scorers"], main, p.n_seeds, {}, "block", 0),
                  (notebook_parameters("05_bump_vs_chaos")["scorers"], main, p.n_seeds, {}, "block", 0)],
        "06": [(every, main, p.n_seeds, {}, "block", 0), (feature_classes(), fine, p.n_seeds, {}, "block", 0),
               *ablations],
        "07": [(every, main, p.n_seeds, {}, "block", 0)],  # per importance (two of them)
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="scratch")
    ap.add_argument("--mfu", type=float, default=0.25, help="share of the peak achieved (assumed)")
    ap.add_argument("--peak", type=float, default=989.0, help="bf16 dense TFLOP/s (H100/H200 SXM: 989)")
    args = ap.parse_args()
    p = resolve_profile(args.profile)
    rate = args.mfu * args.peak * 1e12
    model = build_model(p.replace(drop_path=0.0))
    f_dense = flops_per_image(model, p)
    tokens = p.model.tokens + 1
    f_mlp = 2 * 2 * tokens * p.model.embed_dim * p.model.mlp_hidden * p.model.depth  # fc1 + fc2, multiply-adds x 2
    n_train, n_test = p.n_train or 50_000, p.n_test or 10_000
    steps = n_train // p.batch_size
    rng = np.random.default_rng(0)
    mags = rng.lognormal(0, 0.5, (p.model.depth, p.model.mlp_hidden))
    stats = [BlockStats.from_magnitudes(i, m) for i, m in enumerate(mags)]
    taylor = {s: list(rng.random((p.model.depth, p.model.mlp_hidden))) for s in range(max(p.n_seeds, p.ablation_seeds))}

    rows_seen, evals_seen = set(), set()
    lines = []
    train = p.epochs * steps * p.batch_size * 3 * f_dense + p.epochs * n_test * f_dense
    lines.append(("train + export", p.epochs * steps, "-", train, 0.0))
    for stage, calls in grids(p).items():
        n_rows, flops, cpu = 0, 0.0, 0.0
        for scorers, sparsities, n_seeds, params, allocation, recovery in calls:
            for S in sparsities:
                for sc in scorers:
                    for seed in seeds_for(sc, n_seeds):
                        key = (sc, S, seed, json.dumps(get_scorer(sc).params(params.get(sc, {}))), allocation, recovery)
                        if stage != "07" and key in rows_seen:
                            continue
                        rows_seen.add(key)
                        n_rows += 1
                        if stage == "07":
                            continue  # token rows: counted, timed and costed below
                        st = with_taylor(stats, taylor[seed]) if get_scorer(sc).needs_calibration else stats
                        t0 = time.perf_counter()
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            scores, masks = score_and_select(st, sc, S, seed, params.get(sc, {}), allocation)
                            kappa_hat(*kappa_inputs(scores, st, allocation))
                        h = mask_hash(masks)
                        cpu += time.perf_counter() - t0
                        ev = (h, recovery, seed if recovery else 0)
                        if ev in evals_seen:
                            continue
                        evals_seen.add(ev)
                        f_s = f_dense - S * f_mlp
                        flops += n_test * f_s + recovery * p.batch_size * 3 * f_s
        if stage == "07":  # two token importances; per row: the suffix on the kept tokens
            n_rows *= 2
            b, per_block = p.model.depth // 2, f_dense / p.model.depth  # (patch embedding and head: negligible)
            kept = float(np.mean([1 - S for S in calls[0][1]]))  # share of tokens after block b
            flops = 2 * n_test * b * per_block + n_rows * n_test * (p.model.depth - b) * per_block * kept
            cpu = n_rows * 0.08  # measured: 0.78-0.95 s per 12 token rows of 10,000 images here
        lines.append((stage, n_rows, len(evals_seen) if stage != "07" else "-", flops, cpu))

    print(f"profile {p.name}: {geometry(p)}, {f_dense / 1e9:.2f} GFLOP/image forward (MLP {f_mlp / f_dense:.0%}), "
          f"{n_train} training and {n_test} test images; time at {args.mfu:.0%} of {args.peak:.0f} TFLOP/s")  # fmt: skip
    print(f"{'stage':16s} {'rows':>6s} {'evals (cum.)':>12s} {'PFLOP':>8s} {'GPU s':>7s} {'row CPU s':>9s}"
          "   (rows of training: its optimiser steps)")
    total = 0.0
    for stage, n_rows, n_evals, flops, cpu in lines:
        gpu = flops / rate
        total += gpu + cpu
        print(f"{stage:16s} {n_rows:>6} {n_evals!s:>12s} {flops / 1e15:8.2f} {gpu:7.0f} {cpu:9.0f}")
    print(f"{'compute, in all':16s} {'':>6s} {'':>12s} {sum(x[3] for x in lines) / 1e15:8.2f} {'':>7s} {total:9.0f} s")


if __name__ == "__main__":
    main()
