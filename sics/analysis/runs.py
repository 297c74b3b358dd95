"""Verdicts about a recipe: the analysis of K training runs of one recipe, each run weighted equally.

A run (`sics.paths.run_dir`) is the recipe trained with another `train_seed`. Every run is
studied on the same test images against its own plateau. The recipe-level escape of a class at
S is `stats.run_level_escape` over the runs (stage one: each run's mean over its seeds; stage two:
the interval across runs, with the shared images' error carried). The same claim rules then judge
the recipe (`claims.ledger` on `summarize_runs`), and each run's own ledger says in how many runs
each verdict holds. Pure: rows and per-image results in, data frames out.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from . import claims as claims_mod
from . import criteria as crit_mod
from .stats import mean_ci, run_level_escape
from .summaries import GROUP, PAIRED_COLUMNS, Correct, is_stochastic, plateau_keys, stack, summarize

Run = tuple[pd.DataFrame, Correct]  # (main-grid rows, per-image results) of one run


def _differences(rows: pd.DataFrame, correct: Correct, g: pd.DataFrame, trim: float = 0.0) -> np.ndarray:
    """D [seeds, images] (points) of one class in one run against that run's plateau; with `trim`,
    only the seeds a trimmed mean keeps (the central ones by their escape)."""
    S, alloc, rec = float(g["sparsity"].iloc[0]), str(g["allocation"].iloc[0]), int(g["recovery_steps"].iloc[0])
    ref = np.asarray(correct[plateau_keys(rows)[(S, alloc, rec)]], dtype=np.float64)
    d = (stack(correct, g).astype(np.float64) - ref[None, :]) * 100.0
    if trim and len(d) >= 3:
        cut = int(np.floor(trim * len(d)))
        keep = np.argsort(d.mean(axis=1), kind="stable")[cut:len(d) - cut]
        d = d[np.sort(keep)]
    return d


def _plateau(rows: pd.DataFrame, correct: Correct, key: tuple) -> float:
    """The plateau's accuracy (points) in one run at the S, allocation and recovery of `key`."""
    ref = correct[plateau_keys(rows)[(float(key[1]), str(key[2]), int(key[3]))]]
    return float(np.asarray(ref, dtype=np.float64).mean() * 100)


def summarize_runs(runs: Mapping[int, Run], level: float = 0.95) -> pd.DataFrame:
    """One row per (scorer, S, allocation, recovery, params) that every run measured: the
    recipe-level escape over the runs, with the columns `claims.ledger` reads.

    `n_seeds` is the number of runs K (the interval's replicates), `seeds_per_run` the seeds each
    run has; `escape_se_seed` is the part of the SE seen across runs, `escape_se_image` the shared
    images'. `robust*` is the same two-stage interval over each run's 20% trimmed mean (every
    run's central seeds), for the sensitivity check. `acc` and `plateau` are means over runs.
    """
    if not runs:
        return pd.DataFrame()
    out = []
    for key in _shared_keys(runs):
        per = {r: rows.set_index(GROUP).loc[[key]].reset_index() for r, (rows, _) in runs.items()}
        d = [_differences(runs[r][0], runs[r][1], g) for r, g in per.items()]
        esc = run_level_escape(d, level=level)
        stochastic = any(is_stochastic(key[0], runs[r][0]) for r in runs)
        rob = run_level_escape([_differences(runs[r][0], runs[r][1], g, trim=0.2) for r, g in per.items()],
                               level=level) if stochastic else esc  # fmt: skip
        acc = [float(stack(runs[r][1], g).mean() * 100) for r, g in per.items()]
        m, lo, hi = mean_ci(acc)
        g0 = per[next(iter(per))]
        out.append(dict(
            scorer=key[0], kappa=str(g0["kappa"].iloc[0]), kappa_hat=int(g0["kappa_hat"].mode().max()),
            sparsity=float(key[1]), allocation=key[2], recovery_steps=int(key[3]), params=key[4],
            n_seeds=len(runs), n_runs=len(runs), runs=",".join(str(r) for r in runs),
            seeds_per_run=",".join(str(len(x)) for x in d), stochastic=stochastic,
            acc=m, acc_low=lo, acc_high=hi, acc_std=float(np.std(acc, ddof=1)) if len(acc) > 1 else 0.0,
            plateau=float(np.mean([_plateau(*runs[r], key) for r in runs])),
            escape=esc.mean, escape_low=esc.low, escape_high=esc.high, escape_se=esc.se,
            escape_df=esc.df, escape_p=esc.p_value, escape_se_seed=esc.se_seed, escape_se_image=esc.se_image,
            robust=rob.mean, robust_low=rob.low, robust_high=rob.high, robust_se_seed=rob.se_seed,
            robust_se_image=rob.se_image, robust_n=len(runs),
            mask_hash="|".join(str(g["mask_hash"].iloc[0]) if g["mask_hash"].nunique() == 1 else "(varies)"
                               for g in per.values()),
            n_test=int(d[0].shape[1]),
        ))  # fmt: skip
    return pd.DataFrame(out)


def run_pairs(runs: Mapping[int, Run], scorer: str, reference: str, level: float = 0.95) -> pd.DataFrame:
    """scorer − reference (points) per S at the recipe level: in each run the mean over seeds of
    each, image by image, then the interval across runs (`stats.run_level_escape`). Columns as
    `summaries.paired_table`'s; `n_seeds` is the number of runs."""
    out = []
    sparsities = sorted(set.intersection(*(set(rows["sparsity"]) for rows, _ in runs.values())))
    for S in sparsities:
        d = []
        for rows, correct in runs.values():
            at = rows[(rows["sparsity"] == S) & (rows["allocation"] == "block") & (rows["recovery_steps"] == 0)]
            a, b = at[at["scorer"] == scorer], at[at["scorer"] == reference]
            if a.empty or b.empty:
                break
            d.append((stack(correct, a).mean(axis=0) - stack(correct, b).mean(axis=0))[None, :] * 100.0)
        else:
            e = run_level_escape(d, level=level)
            out.append(dict(sparsity=float(S), mean=e.mean, low=e.low, high=e.high, se=e.se, df=e.df,
                            p=e.p_value, n_seeds=e.n_seeds, se_seed=e.se_seed, se_image=e.se_image))  # fmt: skip
    return pd.DataFrame(out, columns=PAIRED_COLUMNS)


def recipe_ledger(runs: Mapping[int, Run], run_ledgers: Mapping[int, pd.DataFrame] | None = None,
                  summary: pd.DataFrame | None = None, **kw) -> pd.DataFrame:  # fmt: skip
    """The claims judged for the recipe (`claims.ledger` on `summarize_runs` and `run_pairs`), with
    `runs` (K), `holds_in` ("k/K": the runs whose own ledger reads the same verdict) and
    `run_verdicts` (each run's verdict, "run:verdict"). `run_ledgers` default to each run's
    `claims.ledger` over its own seeds; `summary` to `summarize_runs(runs)`."""
    summary = summarize_runs(runs) if summary is None else summary
    pairs = {c: run_pairs(runs, s, r) for c, (s, r) in claims_mod.PAIRS.items()}
    led = claims_mod.ledger(summary, pairs, **kw)
    if run_ledgers is None:
        run_ledgers = {r: run_ledger(rows, correct, **kw) for r, (rows, correct) in runs.items()}
    return with_holds(led, run_ledgers)


def with_holds(led: pd.DataFrame, run_ledgers: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """A recipe-level ledger with `runs` (K), `holds_in` ("k/K": the runs whose own ledger reads
    the same verdict) and `run_verdicts` ("run:verdict" for each run)."""
    per = {r: dict(zip(lg["claim"], lg["verdict"])) for r, lg in run_ledgers.items()}
    return led.assign(
        runs=len(per),
        holds_in=[f"{sum(v.get(c) == x for v in per.values())}/{len(per)}" for c, x in zip(led["claim"], led["verdict"])],
        run_verdicts=["; ".join(f"{r}:{v.get(c, '–')}" for r, v in per.items()) for c in led["claim"]])  # fmt: skip


def run_ledger(rows: pd.DataFrame, correct: Correct, **kw) -> pd.DataFrame:
    """One run's own ledger over its seeds, as a single-network study makes it."""
    return claims_mod.ledger(summarize(rows, correct), claims_mod.claim_pairs(rows, correct), **kw)


def variance_table(runs: Mapping[int, Run]) -> pd.DataFrame:
    """Per class and S, where the uncertainty of a recipe-level escape comes from (points):
    `between_runs_sd`, the SD of a network's escape beyond what its seeds explain
    (√max(s²_runs − mean_r s²_seeds,r/n_r, 0)); `seed_sd`, the SD of one seed's escape within a run
    (pooled over runs); `image_se`, the shared test images' error of the recipe-level escape;
    `run_mean_sd`, the observed SD of the runs' means."""
    out = []
    for key, d in _per_class(runs):
        means = np.array([x.mean() for x in d])
        seed_var = np.array([x.mean(axis=1).var(ddof=1) if len(x) > 1 else np.nan for x in d])
        n = np.array([len(x) for x in d])
        # the seed variance of a run mean, σ²/n_r, with σ² pooled (runs of one seed have none of their own)
        within = np.nanmean(seed_var) * np.mean(1.0 / n) if np.isfinite(seed_var).any() else 0.0
        s2 = means.var(ddof=1) if len(means) > 1 else np.nan
        esc = run_level_escape(d)
        out.append(dict(scorer=key[0], sparsity=float(key[1]), runs=len(d), seeds_per_run=int(n.min()),
                        escape=float(means.mean()), run_mean_sd=float(np.sqrt(s2)),
                        between_runs_sd=float(np.sqrt(max(s2 - within, 0.0))) if np.isfinite(s2) else np.nan,
                        seed_sd=float(np.sqrt(np.nanmean(seed_var))) if np.isfinite(seed_var).any() else 0.0,
                        image_se=esc.se_image))  # fmt: skip
    return pd.DataFrame(out)


def _shared_keys(runs: Mapping[int, Run]) -> list[tuple]:
    """The (scorer, S, allocation, recovery, params) groups that every run measured, in the first
    run's order."""
    keys = set.intersection(*(set(rows.groupby(GROUP, sort=False).groups) for rows, _ in runs.values()))
    first = next(iter(runs.values()))[0]
    return [k for k in first.groupby(GROUP, sort=False).groups if k in keys]


def _per_class(runs: Mapping[int, Run]):
    """(group key, [D per run]) for the per-block, one-shot groups every run measured."""
    main = [k for k in _shared_keys(runs) if k[2] == "block" and int(k[3]) == 0]
    for key in sorted(main, key=lambda k: (k[0], k[1])):
        if key[0] == "magnitude":
            continue
        yield key, [_differences(rows, correct, rows.set_index(GROUP).loc[[key]].reset_index())
                    for rows, correct in runs.values()]  # fmt: skip


def pair_variance(runs: Mapping[int, Run]) -> pd.DataFrame:
    """`variance_table`'s columns for the paired differences C5 and C6 read (scorer − reference, per
    S that every run measured with both), with `claim` naming the claim. `seed_sd` is the SD of
    one seed's difference within a run (each side's seed variance, pooled over runs, summed: the
    two scorers draw their seeds independently; a deterministic side adds none)."""
    out = []
    for claim, (a, b) in claims_mod.PAIRS.items():
        for S in sorted(set.intersection(*(set(rows["sparsity"]) for rows, _ in runs.values()))):
            diffs, one_seed, of_mean, n = [], [], [], []
            for rows, correct in runs.values():
                at = rows[(rows["sparsity"] == S) & (rows["allocation"] == "block") & (rows["recovery_steps"] == 0)]
                ga, gb = at[at["scorer"] == a], at[at["scorer"] == b]
                if ga.empty or gb.empty:
                    break
                xa, xb = (stack(correct, g).astype(np.float64) * 100.0 for g in (ga, gb))
                va, vb = (x.mean(axis=1).var(ddof=1) if len(x) > 1 else 0.0 for x in (xa, xb))
                diffs.append((xa.mean(axis=0) - xb.mean(axis=0))[None, :])
                one_seed.append(va + vb)
                of_mean.append(va / len(xa) + vb / len(xb))
                n.append(max(len(xa), len(xb)))
            else:
                means = np.array([d.mean() for d in diffs])
                s2 = means.var(ddof=1) if len(means) > 1 else np.nan
                esc = run_level_escape(diffs)
                out.append(dict(scorer=f"{a} − {b}", sparsity=float(S), runs=len(diffs), seeds_per_run=min(n),
                                escape=float(means.mean()), run_mean_sd=float(np.sqrt(s2)),
                                between_runs_sd=float(np.sqrt(max(s2 - np.mean(of_mean), 0.0)))
                                if np.isfinite(s2) else np.nan,
                                seed_sd=float(np.sqrt(np.mean(one_seed))), image_se=esc.se_image, claim=claim))  # fmt: skip
    return pd.DataFrame(out)


K_GRID = (3, 4, 6, 8, 12, 16, 24)
DRAWN = ["scorer", "sparsity", "between_runs_sd", "seed_sd", "image_se"]  # a cell's parts in `variance`


def recipe_power(variance: pd.DataFrame, summary: pd.DataFrame, *, seeds: int = 5, k_grid=K_GRID,
                 reps: int = 300, margin: float = claims_mod.MARGIN, seed: int = 0,
                 criteria: tuple[list[str], list[str]] | None = None) -> pd.DataFrame:  # fmt: skip
    """How often each claim's whole rule reaches each verdict with K runs of `seeds` seeds, if the
    recipe's true escapes were the ones measured now: one row per (claim, K, verdict), `share` of
    `reps` simulated studies.

    Each simulated study draws, per class and S, K run means around the measured recipe-level
    escape (between-run SD and the SD of one seed within a run from `variance_table`; the shared
    images' error, which every run shares, once per study), forms the two-stage interval
    (`stats.run_level_escape`'s pivot, K − 1 df) and judges the claim with its own rule
    (`claims.CLAIMS`), Holm family and margin included. The paired differences of C5 and C6 are
    drawn the same way from their rows of `variance` (those with a `claim`, `pair_variance`),
    when it has them. With `criteria` (the published criteria C7 reads, the family C1 measures),
    their cells are drawn too and C1 and C7 are judged by the criteria study's rules
    (`criteria.within_rule`; C1's by-construction part as measured, not drawn). Each group of cells
    draws on a random stream of its own. Cells are drawn independently. The between-run SD of a
    few runs is itself uncertain, so the answer is a guide, not a promise.
    """
    is_pair = variance["claim"].isin(claims_mod.PAIRS) if "claim" in variance else pd.Series(False, variance.index)
    classes = variance.loc[~is_pair, DRAWN]
    cells = summary[summary["kappa"].astype(str).isin(("1", "2"))].merge(classes, on=["scorer", "sparsity"])
    paired = variance[is_pair].reset_index(drop=True)
    judged = [*(("C2", "C3", "C4") if len(cells) else ()), *sorted(set(paired.get("claim", ())))]
    crit_cells = None
    if criteria is not None:
        names, family = criteria
        crit_cells = summary.loc[summary["scorer"].isin([*names, *family]), ["scorer", "sparsity", "escape"]].merge(
            classes, on=["scorer", "sparsity"])  # fmt: skip
        built = claims_mod.c1(summary)["verdict"]  # C1 by construction: the masks, not drawn
        in_c1, in_c7 = (crit_cells["scorer"].isin(x).to_numpy() for x in (family, names))
    if not judged and crit_cells is None:
        return pd.DataFrame(columns=["claim", "runs", "verdict", "share"])
    base = cells[["scorer", "kappa", "sparsity"]].assign(allocation="block", recovery_steps=0,
                                                         mask_hash=cells["scorer"], n_seeds=0)  # fmt: skip
    rngs = [np.random.default_rng(s) for s in (seed, [seed, 1], [seed, 2])]  # classes, pairs, criteria
    out = []
    for K in k_grid:
        counts: dict[tuple[str, str], int] = {}
        for _ in range(reps):
            sim = base.assign(**_draw(cells, K, seeds, rngs[0]))
            pairs = {}
            if len(paired):
                sims = paired[["claim", "sparsity"]].assign(**_draw(paired, K, seeds, rngs[1])).rename(columns=PAIR_NAMES)
                pairs = {c: g.drop(columns="claim").reset_index(drop=True) for c, g in sims.groupby("claim")}
            verdicts = {c: claims_mod.CLAIMS[c].judge(sim, pairs=pairs, margin=margin)["verdict"] for c in judged}
            if crit_cells is not None:  # `criteria.within_rule`: C1's measured part and C7
                drawn = pd.DataFrame(_draw(crit_cells, K, seeds, rngs[2]))
                verdicts["C1"] = crit_mod.within_rule(drawn[in_c1], margin) if built == "supported" else built
                verdicts["C7"] = crit_mod.within_rule(drawn[in_c7], crit_mod.C7_MARGIN)
            for c, v in verdicts.items():
                counts[(c, v)] = counts.get((c, v), 0) + 1
        out += [dict(claim=c, runs=K, verdict=v, share=n / reps) for (c, v), n in sorted(counts.items())]
    return pd.DataFrame(out)


PAIR_NAMES = {"escape": "mean", "escape_low": "low", "escape_high": "high", "escape_se_seed": "se_seed",
              "escape_se_image": "se_image"}  # a summary's columns as `run_pairs` names them  # fmt: skip


def _draw(frame: pd.DataFrame, K: int, seeds: int, rng: np.random.Generator) -> dict[str, np.ndarray | int]:
    """A summary's interval columns (escape, its bounds, seed and image SE, n_seeds = K) for K
    simulated runs of `seeds` seeds per row of `frame` (its `escape` and `DRAWN` parts): the
    two-stage interval's pivot."""
    from .stats import _half_width

    spread = np.sqrt(np.nan_to_num(frame["between_runs_sd"].to_numpy(float)) ** 2
                     + frame["seed_sd"].to_numpy(float) ** 2 / seeds)  # fmt: skip
    img = frame["image_se"].to_numpy(float)
    e = frame["escape"].to_numpy(float)[:, None] + spread[:, None] * rng.standard_normal((len(frame), K))
    a = e.var(axis=1, ddof=1) / K
    est, q = e.mean(axis=1) + img * rng.standard_normal(len(frame)), _half_width(a, img**2, K - 1, 0.95)
    return dict(escape=est, escape_low=est - q, escape_high=est + q, escape_se_seed=np.sqrt(a), escape_se_image=img,
                n_seeds=K)  # fmt: skip


def runs_needed(power: pd.DataFrame, level: float = 0.8) -> pd.DataFrame:
    """Per claim, the fewest runs K (of the grid) at which one decisive verdict (anything but
    inconclusive) is reached in at least `level` of the simulated studies, and that verdict;
    NaN where no K of the grid gets there."""
    out = []
    for c, g in power.groupby("claim", sort=True):
        hit = g[(g["verdict"] != "inconclusive") & (g["share"] >= level)].sort_values("runs")
        out.append(dict(claim=c, runs_needed=int(hit["runs"].iloc[0]) if len(hit) else np.nan,
                        verdict=hit["verdict"].iloc[0] if len(hit) else ""))  # fmt: skip
    return pd.DataFrame(out)
