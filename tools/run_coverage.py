"""Coverage of the recipe-level (run-level) interval over the full grid of scenarios, printed.

    .venv/bin/python tools/run_coverage.py [--reps 2000] [--images 200]

Each cell simulates K training runs with n seeds each, all on the same test images
(`simulate.simulate_runs`: a between-run effect, the seed effect, an image effect every run shares,
one per run and one per selection), and reports how often the 95% interval holds the true escape:
the two-stage interval (`stats.run_level_escape`), and the wrong analysis that pools every seed
as if from one network. The CI test (tests/study/test_runs.py) checks a few of these cells.
"""

from __future__ import annotations

import argparse
import itertools

import numpy as np

from sics.analysis import simulate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--images", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(2026)
    print(f"{'shape':9s} {'run SD':>6s} {'K':>2s} {'n':>3s}  {'two-stage':>9s} {'pooled':>7s} {'width':>6s}")
    for shape, run_sd, K, n in itertools.product(simulate.SEED_SHAPES, (0.0, 1.0, 2.0, 3.0), (3, 4, 6), (5, 10, 20)):
        hit, pooled, width = [], [], []
        chunk = max(1, min(args.reps, 200_000 // (K * n)))
        done = 0
        while done < args.reps:
            m = min(chunk, args.reps - done)
            d = simulate.simulate_runs(rng, K, n, run_sd=run_sd, shape=shape, N=args.images, reps=m)
            r, p = simulate.run_level_many(d), simulate.run_level_many(d, pooled=True)
            hit.append((r["low"] <= 1.0) & (1.0 <= r["high"]))
            pooled.append((p["low"] <= 1.0) & (1.0 <= p["high"]))
            width.append(r["high"] - r["low"])
            done += m
        print(f"{shape:9s} {run_sd:6.1f} {K:2d} {n:3d}  {np.mean(np.concatenate(hit)):9.1%} "
              f"{np.mean(np.concatenate(pooled)):7.1%} {np.mean(np.concatenate(width)):6.2f}", flush=True)


if __name__ == "__main__":
    main()
