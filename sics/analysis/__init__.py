"""The analysis layer: pure functions of a study's rows and per-image results, with no torch.

- `stats`: paired intervals, tests and their simulation;
- `summaries`: per-(scorer, S) summaries, escapes, paired comparisons, regime boundaries;
- `claims`: the paper's claims, each with its rule and the comparisons it reads;
- `power`: what a study's seeds can detect, how many would decide each claim, rows per hour;
- `seeds`: each seed's own escape, the share of seeds that escape, outlier seeds;
- `criteria`: the published criteria against the plateau, matched controls, C1 measured and C7.

The summaries' functions are also reachable here (`analysis.summarize`), as the notebooks use them.
"""

from .power import power_table, throughput
from .seeds import per_seed, seed_shares
from .summaries import (
    ALPHA,
    ESCAPE_KAPPAS,
    PLATEAU_SCORER,
    escape_family,
    nearest,
    negate,
    paired_table,
    regime_boundaries,
    result_key,
    summarize,
    with_holm,
)

__all__ = ["ALPHA", "ESCAPE_KAPPAS", "PLATEAU_SCORER", "escape_family", "nearest", "negate", "paired_table",
           "per_seed", "power_table", "regime_boundaries", "result_key", "seed_shares", "summarize",
           "throughput", "with_holm"]  # fmt: skip
