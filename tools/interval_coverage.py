"""Coverage and power of the paired-escape interval, old (bootstrap) against new (analytic).

    .venv/bin/python tools/interval_coverage.py [--reps 4000] [--old-reps 400] [--n-boot 1000]

Simulated studies with a known population escape (`sics.analysis.simulate.simulate_paired`: 10,000 test
images, image SE ≈ 0.45 point, seed SD 0/2/5 points, 3 or 5 seeds, true escape +1 point).
Prints Markdown tables: coverage of the nominal 95% interval and its mean width for the former
bootstrap (`old_paired_escape`, as in git before the change), for a t interval with the plug-in
Welch–Satterthwaite df (the same SE; shown because it was the first candidate) and for the
new `paired_escape`; then the power to detect a +3-point escape with 5 seeds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import stats as sps

from sics.analysis.simulate import expand_patterns, paired_from_patterns, simulate_paired
from sics.analysis.stats import Paired

# --- the former procedure: the bootstrap this change replaced, split at np.unique so that a ----
# --- simulated replicate can enter as pattern counts; otherwise as it was -----------------------


def old_paired_escape(correct: np.ndarray, reference: np.ndarray, *, n_boot: int = 2000,
                      level: float = 0.95, seed: int = 0) -> Paired:  # fmt: skip
    c = np.atleast_2d(np.asarray(correct, dtype=np.float32))
    ref = np.asarray(reference, dtype=np.float32)
    if c.shape[1] != ref.shape[0]:
        raise ValueError(f"paired comparison needs the same images: {c.shape[1]} vs {ref.shape[0]}")
    d = (c - ref[None, :]) * 100.0  # per-seed, per-image difference in points
    return _old_from_diff(d, n_boot=n_boot, level=level, seed=seed)


def _old_from_diff(d, *, n_boot, level, seed):
    patterns, counts = np.unique(d.T, axis=0, return_counts=True)  # [P, seeds], [P]
    return _old_from_counts(patterns, counts, d, n_boot=n_boot, level=level, seed=seed)


def _old_from_counts(patterns, counts, d=None, *, n_boot, level, seed):
    """The bootstrap from (sorted, nonzero) pattern counts; the rest as the old code."""
    n_i = int(counts.sum())
    n_s = patterns.shape[1]
    point = float(counts @ patterns.mean(axis=1) / n_i)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_i, counts / n_i, size=n_boot)  # [B, P]
    per_seed = draws @ patterns / n_i  # [B, seeds]
    if n_s > 1:
        pick = rng.integers(0, n_s, size=(n_boot, n_s))
        boots = np.take_along_axis(per_seed, pick, axis=1).mean(axis=1)
    else:
        boots = per_seed[:, 0]
    alpha = (1 - level) / 2
    low, high = (float(v) for v in np.quantile(boots, [alpha, 1 - alpha]))
    if np.all(patterns[counts > 0] == 0):
        p = 1.0
    else:
        p = float(min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean())))
    return Paired(point, low, high, np.nan, np.nan, p, n_s, n_i)


def old_from_simulation(patterns, counts_row, *, n_boot, seed=0):
    """`old_paired_escape` on one simulated replicate, without expanding it to images."""
    keep = counts_row > 0
    pat, cnt = patterns[keep].astype(np.float32), counts_row[keep]
    order = np.lexsort(pat.T[::-1])  # np.unique's row order
    return _old_from_counts(pat[order], cnt[order], n_boot=n_boot, level=0.95, seed=seed)


# --- the tables ------------------------------------------------------------------------------


def satterthwaite(r, n_seeds):
    """t interval on the same SE with the plug-in df = (n − 1)·(SE²/A)², A = s_d²/n."""
    a = r["se_seed"] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(a > 0, (n_seeds - 1) * (r["se"] ** 2 / a) ** 2, np.inf)
    t = np.where(np.isfinite(df), sps.t.ppf(0.975, np.where(np.isfinite(df), df, 1)), 1.959964)
    return dict(low=r["mean"] - t * r["se"], high=r["mean"] + t * r["se"])


def covered(r, truth):
    return (np.asarray(r["low"]) <= truth) & (truth <= np.asarray(r["high"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=4000, help="replicates per cell, new procedure")
    ap.add_argument("--old-reps", type=int, default=400, help="replicates per cell, bootstrap")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap draws (old procedure)")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()

    # the shortcut is the old code itself: check on one replicate against the verbatim function
    pat, counts, _ = simulate_paired(rng, 3, 2.0, 1.0, reps=1)
    a = _old_from_diff(expand_patterns(pat, counts[0]).astype(np.float32), n_boot=200,
                       level=0.95, seed=0)  # fmt: skip
    b = old_from_simulation(pat, counts[0], n_boot=200)
    assert np.allclose((a.mean, a.low, a.high, a.p_value), (b.mean, b.low, b.high, b.p_value))

    print("Coverage of the nominal 95% interval for the escape (true escape +1 point, 10,000")
    print(f"images, image SE ≈ 0.45 pt). New and Welch–Satterthwaite: {args.reps} replicates per")
    print(f"cell (coverage SE ≈ {100 * np.sqrt(0.95 * 0.05 / args.reps):.1f} pt); old bootstrap: "
          f"{args.old_reps} replicates, {args.n_boot} draws (SE ≈ "
          f"{100 * np.sqrt(0.95 * 0.05 / args.old_reps):.1f} pt). Width: mean, in points.\n")  # fmt: skip
    print("| seeds | seed SD (pt) | old coverage | old width | Satterthwaite coverage "
          "| Satterthwaite width | new coverage | new width |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n_seeds in (3, 5):
        for sd in (0.0, 2.0, 5.0):
            pat, counts, truth = simulate_paired(rng, n_seeds, sd, 1.0, reps=args.reps)
            new = paired_from_patterns(pat, counts)
            sat = satterthwaite(new, n_seeds)
            old = [old_from_simulation(pat, c, n_boot=args.n_boot) for c in counts[: args.old_reps]]
            old = dict(low=np.array([o.low for o in old]), high=np.array([o.high for o in old]))
            row = [f"{n_seeds}", f"{sd:g}"]
            for r in (old, sat, new):
                width = np.mean(r["high"] - r["low"])
                row += [f"{100 * covered(r, truth).mean():.1f}%", f"{width:.2f}"]
            print("| " + " | ".join(row) + " |")

    print("\nPower: share of replicates whose 95% interval lies above 0, 5 seeds, true escape +3")
    print("points (old bootstrap shown for reference only: it does not hold its level).\n")
    print("| seed SD (pt) | old power | new power | new mean width |")
    print("|---:|---:|---:|---:|")
    for sd in (0.0, 1.0, 2.0):
        pat, counts, truth = simulate_paired(rng, 5, sd, 3.0, reps=args.reps)
        new = paired_from_patterns(pat, counts)
        old = [old_from_simulation(pat, c, n_boot=args.n_boot) for c in counts[: args.old_reps]]
        old_power = np.mean([o.low > 0 for o in old])
        print(f"| {sd:g} | {100 * old_power:.1f}% | {100 * np.mean(new['low'] > 0):.1f}% "
              f"| {np.mean(new['high'] - new['low']):.2f} |")  # fmt: skip
    print(f"\n({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
