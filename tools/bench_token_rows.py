"""Seconds of per-row selection work for token pruning: score, select, κ̂, overlap, mask hash.

    python tools/bench_token_rows.py [--groups 10000] [--tokens 64]

One sweep row of the token study selects per image: 10,000 groups of 64 patch tokens for the
reference ViT. This times, for each scorer, what a row does besides the forward pass, on
synthetic importances (no model, no data), and prints one line per scorer and the total. Run it
at two revisions (a git worktree) to compare them on one machine.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from sics.selection.complexity import kappa_hat
from sics.selection.groups import BlockStats, with_taylor
from sics.selection.scorers import NINE
from sics.selection.select import jaccard, kappa_inputs, mask_hash, overlap, score_and_select


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--groups", type=int, default=10_000)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--sparsity", type=float, default=0.7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    m, taylor = rng.lognormal(0, 0.5, (args.groups, args.tokens)), rng.random((args.groups, args.tokens))
    if hasattr(BlockStats, "groups"):  # as the token unit builds them: stacked once per study
        stats = with_taylor(BlockStats.groups(m), list(taylor))
    else:  # (revisions before stacked groups)
        stats = with_taylor([BlockStats.from_magnitudes(i, row) for i, row in enumerate(m)], list(taylor))
    S = args.sparsity
    _, ref = score_and_select(stats, "magnitude", S)
    total = 0.0
    for name in [*NINE, "gradient", "bump", "random"]:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores, masks = score_and_select(stats, name, S, seed=1)
            kappa_hat(*kappa_inputs(scores, stats, "block"))
        overlap(masks, ref), jaccard(masks, ref), mask_hash(masks)
        dt = time.perf_counter() - t0
        total += dt
        print(f"{name:18s} {dt:8.3f} s  (mask {mask_hash(masks)})", flush=True)
    print(f"{'all 12 scorers':18s} {total:8.3f} s for {args.groups} groups of {args.tokens} tokens at S={S}")


if __name__ == "__main__":
    main()
