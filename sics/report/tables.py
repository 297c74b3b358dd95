"""Tables as csv (numeric, tidy), Markdown and LaTeX (formatted), drawn from the analysis.

Presentation only: every number comes from `sics.analysis` and every verdict from
`sics.analysis.claims`. Accuracy and escape are in accuracy points everywhere (protocol section 6).
A `*` marks an escape significant after Holm's adjustment over the table's family (every
non-κ=0 feature class at every S shown; `analysis.escape_family`).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from .. import paper
from ..analysis.claims import (
    BUMP,
    CHAOS,
    FAKE,
    GRADIENT,
    merged,
    paper_regime,
)
from ..analysis.summaries import escape_family
from ..files import write_csv, write_text
from ..selection.scorers import NON_MONOTONE_KAPPAS, feature_classes, kappa0
from .output import Output


def fmt(m: float, lo: float = np.nan, hi: float = np.nan, digits: int = 1) -> str:
    if np.isnan(m):
        return "–"
    s = f"{m:.{digits}f}"
    if not (np.isnan(lo) or np.isnan(hi)):
        s += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return s


def fmt_signed(m: float, lo: float = np.nan, hi: float = np.nan, digits: int = 1) -> str:
    if np.isnan(m):
        return "–"
    m, lo, hi = (round(v, digits) + 0.0 for v in (m, lo, hi))  # no "-0.0"
    s = f"{m:+.{digits}f}"
    if not (np.isnan(lo) or np.isnan(hi)):
        s += f" [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    return s


# --- saving ------------------------------------------------------------------------------------


def markdown(df: pd.DataFrame) -> str:
    """`df` as a Markdown table laid out by character count, so the bytes do not depend on
    whether the optional `wcwidth` is installed (tabulate measures combining marks, such as
    κ̂'s, with it when it is: a machine without jupyter wrote other column widths)."""
    import tabulate

    saved, tabulate.WIDE_CHARS_MODE = tabulate.WIDE_CHARS_MODE, False
    try:
        return df.to_markdown(index=False, disable_numparse=True)
    finally:
        tabulate.WIDE_CHARS_MODE = saved


def save_table(df: pd.DataFrame, name: str, out: Output, *, shown: pd.DataFrame | None = None,
               title: str = "") -> dict[str, Path]:  # fmt: skip
    """`name`.csv (numeric, tidy) plus `name`.md and `name`.tex (formatted `shown`), in `out`'s
    folder with its caption."""
    shown = df if shown is None else shown
    folder, cap = out.folder, out.caption
    return {
        "csv": write_csv(folder / f"{name}.csv", df),
        "md": write_text(folder / f"{name}.md", f"**{title}**\n\n{markdown(shown)}\n\n_{cap}_\n"),
        "tex": write_text(folder / f"{name}.tex", _latex(shown, title, cap, name)),
    }  # fmt: skip


LATEX = {"κ̂": r"$\hat\kappa$", "κ": r"$\kappa$", "Π": r"$\Pi$", "λ": r"$\lambda$", "φ": r"$\phi$",
         "σ": r"$\sigma$", "≈": r"$\approx$", "≡": r"$\equiv$", "−": "-", "–": "--", "_": r"\_",
         "%": r"\%", "&": r"\&", "#": r"\#", "|": r"$|$", "x̃": "x", "m̃": r"$\tilde m$",
         "²": r"$^2$", "≥": r"$\geq$", "<": r"$<$", ">": r"$>$"}  # fmt: skip


def latex_escape(text) -> str:
    out = str(text).replace("\\", r"\textbackslash{}")
    for k, v in LATEX.items():  # κ̂ before κ: dicts keep insertion order
        out = out.replace(k, v)
    return out


def _latex(df: pd.DataFrame, title: str, cap: str, name: str) -> str:
    body = df.rename(columns=latex_escape).map(latex_escape)
    return body.to_latex(index=False, escape=False, caption=latex_escape(f"{title}. {cap}"), label=f"tab:{name}")


def _wide(df: pd.DataFrame, value: str, index: list[str]) -> pd.DataFrame:
    wide = df.pivot_table(index=index, columns="sparsity", values=value, aggfunc="first", sort=False)
    wide = wide[sorted(wide.columns)]  # S ascending, whatever order the rows came in
    wide.columns = [f"S={c:g}" for c in wide.columns]
    return wide.reset_index()


def _star(sig: str) -> str:
    return "*" if sig else ""


# --- the paper's tables ------------------------------------------------------------------------


def table1(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Selection plateau: κ=0 scorers, gradient, random x S: accuracy and Jaccard with magnitude."""
    df = summary[summary["scorer"].isin([*kappa0(), "gradient", "random"])].copy()
    cols = ["scorer", "kappa", "sparsity", "n_seeds", "acc", "acc_low", "acc_high",
            "jaccard_magnitude", "same_mask_as_magnitude", "mask_hash"]  # fmt: skip
    df = df[cols]
    shown = df.assign(cell=[f"{fmt(r.acc, r.acc_low, r.acc_high)} (J={r.jaccard_magnitude:.2f})"
                            for r in df.itertuples()])  # fmt: skip
    return df, _wide(shown, "cell", index=["scorer", "kappa"])


def table2(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """κ spectrum: every feature class x S: accuracy and escape (points), with κ and κ̂."""
    df = summary[summary["scorer"].isin(feature_classes())].copy()
    fam = escape_family(df)
    df = df.join(fam[["p_holm", "sig"]]).fillna({"sig": ""})
    df = df[["scorer", "kappa", "kappa_hat", "sparsity", "n_seeds", "acc", "acc_low", "acc_high",
             "escape", "escape_low", "escape_high", "escape_p", "p_holm", "sig",
             "overlap_magnitude"]]  # fmt: skip
    shown = df.assign(cell=[f"{r.acc:.1f} / {fmt_signed(r.escape, r.escape_low, r.escape_high)}{_star(r.sig)}"
                            for r in df.itertuples()])  # fmt: skip
    shown = _wide(shown, "cell", index=["scorer", "kappa"])
    shown.insert(2, "κ̂", shown["scorer"].map(df.groupby("scorer")["kappa_hat"].agg(_span)))
    return df, shown.rename(columns={"kappa": "κ"})


def _span(values: pd.Series):
    """One value, or 'low–high' where a class's measured κ̂ differs between sparsities (a row per
    class either way: the fake control's κ̂ moves with S for tokens)."""
    lo, hi = values.min(), values.max()
    return lo if lo == hi else f"{lo}–{hi}"


def table3(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SICS regimes: per S, the lowest κ with a class that escapes (Holm over every κ=1/2 class
    at every S of the table), and the best class, beside the regime the paper states."""
    fam = escape_family(summary, kappas=NON_MONOTONE_KAPPAS)
    rows = []
    for S, g in fam.groupby("sparsity"):
        best = g.loc[g["escape"].idxmax()]
        lowest = g[g["sig"] == "up"].sort_values(["kappa", "escape"], ascending=[True, False]).head(1)
        kappa, reg = paper_regime(S)
        none = lowest.empty
        rows.append(dict(
            sparsity=S,
            lowest_escaping_kappa="0 (none escapes)" if none else lowest["kappa"].iloc[0],
            lowest_escaping_class="–" if none else lowest["scorer"].iloc[0],
            lowest_escape=np.nan if none else lowest["escape"].iloc[0],
            lowest_escape_low=np.nan if none else lowest["escape_low"].iloc[0],
            lowest_escape_high=np.nan if none else lowest["escape_high"].iloc[0],
            lowest_p_holm=np.nan if none else lowest["p_holm"].iloc[0],
            best_class=best["scorer"], best_kappa=best["kappa"], best_escape=best["escape"],
            best_escape_low=best["escape_low"], best_escape_high=best["escape_high"],
            best_p_holm=best["p_holm"], paper_kappa=kappa, paper_regime=reg,
        ))  # fmt: skip
    df = pd.DataFrame(rows)
    shown = pd.DataFrame({
        "S": df["sparsity"],
        "lowest κ escaping (ours)": df["lowest_escaping_kappa"],
        "its class, escape [95% CI]": ["–" if r.lowest_escaping_class == "–" else
                                       f"{r.lowest_escaping_class} {fmt_signed(r.lowest_escape, r.lowest_escape_low, r.lowest_escape_high)}"
                                       for r in df.itertuples()],
        "best class (κ), escape [95% CI]": [f"{r.best_class} ({r.best_kappa}) {fmt_signed(r.best_escape, r.best_escape_low, r.best_escape_high)}"
                                             for r in df.itertuples()],
        "paper: κ, regime": [f"{r.paper_kappa}: {r.paper_regime}" for r in df.itertuples()],
    })  # fmt: skip
    return df, shown


def table4(summary: pd.DataFrame, fake_minus_gradient: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fake control per S: Π(S), fake_nonmonotone, gradient, their paired difference on the same
    images, and the best magnitude-independent (κ=1/2) class."""
    rows = []
    pairs = fake_minus_gradient.set_index("sparsity")
    for S, g in summary.groupby("sparsity"):
        fake, grad = _first(g, FAKE), _first(g, GRADIENT)
        indep = g[g["kappa"].isin(NON_MONOTONE_KAPPAS)]
        best = indep.loc[indep["escape"].idxmax()] if len(indep) else None
        d = pairs.loc[S] if S in pairs.index else None
        rows.append(dict(
            sparsity=S, plateau=g["plateau"].iloc[0],
            fake=np.nan if fake is None else fake["acc"],
            gradient=np.nan if grad is None else grad["acc"],
            gradient_low=np.nan if grad is None else grad["acc_low"],
            gradient_high=np.nan if grad is None else grad["acc_high"],
            fake_minus_gradient=np.nan if d is None else d["mean"],
            fake_minus_gradient_low=np.nan if d is None else d["low"],
            fake_minus_gradient_high=np.nan if d is None else d["high"],
            best_independent=None if best is None else best["scorer"],
            best_independent_acc=np.nan if best is None else best["acc"],
        ))  # fmt: skip
    df = pd.DataFrame(rows)
    shown = pd.DataFrame({
        "S": df["sparsity"], "Π(S)": df["plateau"].map("{:.1f}".format),
        "fake_nonmonotone": df["fake"].map("{:.1f}".format),
        "gradient [95% CI over seeds]": [fmt(r.gradient, r.gradient_low, r.gradient_high) for r in df.itertuples()],
        "fake − gradient, paired [95% CI]": [fmt_signed(r.fake_minus_gradient, r.fake_minus_gradient_low,
                                                        r.fake_minus_gradient_high) for r in df.itertuples()],
        "best magnitude-independent": [f"{r.best_independent} {r.best_independent_acc:.1f}" for r in df.itertuples()],
    })  # fmt: skip
    return df, shown


def table5(summary: pd.DataFrame, chaos_minus_bump: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bump vs chaos per S: escapes of `bump` and `logistic_smooth`, and their paired difference,
    beside the paper's figures."""
    rows = []
    pairs = chaos_minus_bump.set_index("sparsity")
    for S, g in summary.groupby("sparsity"):
        b, c = _first(g, BUMP), _first(g, CHAOS)
        if b is None or c is None:
            continue
        d = pairs.loc[S] if S in pairs.index else None
        rows.append(dict(sparsity=S, bump=b["escape"], bump_low=b["escape_low"], bump_high=b["escape_high"],
                         chaos=c["escape"], chaos_low=c["escape_low"], chaos_high=c["escape_high"],
                         chaos_minus_bump=np.nan if d is None else d["mean"],
                         chaos_minus_bump_low=np.nan if d is None else d["low"],
                         chaos_minus_bump_high=np.nan if d is None else d["high"],
                         bump_overlap=b["overlap_magnitude"], chaos_overlap=c["overlap_magnitude"],
                         paper_bump=paper.BUMP_ESCAPE, paper_chaos=paper.CHAOS_ESCAPE))  # fmt: skip
    df = pd.DataFrame(rows)
    shown = pd.DataFrame({
        "S": df["sparsity"],
        "bump escape [95% CI]": [fmt_signed(r.bump, r.bump_low, r.bump_high) for r in df.itertuples()],
        "logistic_smooth escape [95% CI]": [fmt_signed(r.chaos, r.chaos_low, r.chaos_high) for r in df.itertuples()],
        "chaos − bump, paired [95% CI]": [fmt_signed(r.chaos_minus_bump, r.chaos_minus_bump_low,
                                                     r.chaos_minus_bump_high) for r in df.itertuples()],
        "kept shared with magnitude (bump / chaos)": [f"{r.bump_overlap:.2f} / {r.chaos_overlap:.2f}" for r in df.itertuples()],
        "paper (S not stated)": f"+{paper.BUMP_ESCAPE} / +{paper.CHAOS_ESCAPE}",
    })  # fmt: skip
    return df, shown


def _first(g: pd.DataFrame, scorer: str) -> pd.Series | None:
    hit = g[g["scorer"] == scorer]
    return hit.iloc[0] if len(hit) else None


# --- the claims ledger ---------------------------------------------------------------------------

LEDGER_NUMBERS = ("sparsity", "value", "low", "high")


def read_ledger(name: str, out: Output) -> pd.DataFrame | None:
    """A ledger saved by `save_table` in `out`'s folder, read back as written (text as text, so that
    saving it again changes no byte; its numeric columns as numbers), or None if there is none."""
    path = out.folder / f"{name}.csv"
    if not path.exists():
        return None
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in (c for c in LEDGER_NUMBERS if c in df.columns):
        df[col] = pd.to_numeric(df[col].replace("", np.nan))
    return df


def _title_and_caption(md: Path) -> tuple[str, str]:
    """The title and caption of a table `save_table` wrote (its first and last lines)."""
    lines = md.read_text().strip().split("\n")
    return lines[0].strip("*"), lines[-1].strip("_")


def _ckpt(caption: str) -> str | None:
    found = re.search(r"ckpt=(\S+)", caption)
    return found.group(1) if found else None


def save_claims(ledger: pd.DataFrame, out: Output, title: str) -> pd.DataFrame:
    """Save a notebook's own claims ledger (`claims_sweeps.{csv,md,tex}`: 06, 07, 08); `merge_claims`
    joins it with the criteria study's into the study's `claims.*`. Returns the ledger."""
    save_table(ledger, "claims_sweeps", out, shown=claims_table(ledger), title=title)
    return ledger


def merge_claims(folder: Path) -> pd.DataFrame | None:
    """Write a study folder's `claims.{csv,md,tex}`: its notebooks' ledger (`claims_sweeps.*`, with
    its title and caption) with the criteria study's C1 and C7 (`claims_criteria.*`, notebook 09)
    merged in where they belong to the same checkpoint. The one step that reads ledgers back;
    `make paper` runs it after the notebooks, so no notebook reads another's output. None
    (nothing written) where the folder has no ledger of its own."""
    own, md = read_ledger("claims_sweeps", Output(folder, "")), folder / "claims_sweeps.md"
    if own is None or not md.exists():
        return None
    title, caption = _title_and_caption(md)
    criteria, cmd = read_ledger("claims_criteria", Output(folder, "")), folder / "claims_criteria.md"
    if criteria is not None and cmd.exists() and _ckpt(_title_and_caption(cmd)[1]) != _ckpt(caption):
        print(f"[sics] {folder.name}/{cmd.name} belongs to another checkpoint: the ledger keeps its own C1 and no C7")
        criteria = None
    ledger = merged(own, criteria)
    save_table(ledger, "claims", Output(folder, caption), shown=claims_table(ledger), title=title)
    return ledger


def claims_table(ledger: pd.DataFrame) -> pd.DataFrame:
    """The ledger as shown (markdown/LaTeX): statement, paper, ours, verdict."""
    return ledger[["claim", "statement", "paper", "where", "measured", "verdict"]].fillna("")


def ablation_table(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numeric csv table, shown table): escape [95% CI] per scorer and variant, S as columns.

    `*`: significant after Holm over the ablation's non-plateau rows (every variant, class, S).
    """
    cols = ["ablation", "variant", "scorer", "kappa", "sparsity", "n_seeds", "plateau", "acc",
            "escape", "escape_low", "escape_high", "escape_p"]  # fmt: skip
    df = summary[[*cols, "overlap_magnitude"]].copy()
    fam = escape_family(df)
    df = df.join(fam[["p_holm", "sig"]]).fillna({"sig": ""})
    shown = df.assign(cell=[fmt_signed(r.escape, r.escape_low, r.escape_high) + _star(r.sig)
                            for r in df.itertuples()])  # fmt: skip
    plateau = df[df["scorer"] == "magnitude"].assign(
        scorer="Π(S) accuracy", kappa="0", cell=lambda d: d["plateau"].map("{:.1f}".format))
    shown = pd.concat([plateau, shown[shown["scorer"] != "magnitude"]], ignore_index=True)
    return df, _wide(shown, "cell", index=["scorer", "kappa", "variant"])


# --- beyond the paper: published criteria ------------------------------------------------------


def criteria_table(crit: pd.DataFrame, compact: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Published criteria x S (`analysis.criteria.criteria_summary`): accuracy and the paired
    difference from the plateau Π(S), with Jaccard against magnitude; *: significant (Holm).
    `compact` (for the fine grid's many columns) shows accuracy and difference only."""
    df = crit[["scorer", "allocation", "sparsity", "n_seeds", "acc", "acc_low", "acc_high", "plateau", "escape",
               "escape_low", "escape_high", "escape_p", "p_holm", "sig", "jaccard_magnitude"]].copy()  # fmt: skip
    if compact:
        cells = [f"{r.acc:.1f} ({fmt_signed(r.escape)}){_star(r.sig)}" for r in df.itertuples()]
    else:
        cells = [f"{r.acc:.1f} / {fmt_signed(r.escape, r.escape_low, r.escape_high)}{_star(r.sig)} "
                 f"(J={r.jaccard_magnitude:.2f})" for r in df.itertuples()]  # fmt: skip
    return df, _wide(df.assign(cell=cells), "cell", index=["scorer", "allocation"]).fillna("–")  # –: not run at that S


def versus_view(versus: pd.DataFrame) -> pd.DataFrame:
    """One scorer against others per S (`analysis.criteria.versus_table`), formatted wide."""
    shown = versus.assign(cell=[f"{fmt_signed(r.mean, r.low, r.high)}{_star(r.sig)}" for r in versus.itertuples()])
    return _wide(shown, "cell", index=["versus"]).fillna("–")


def matched_view(matched: pd.DataFrame) -> pd.DataFrame:
    """Class − matched control per S (`analysis.criteria.matched_table`), formatted wide."""
    shown = matched.assign(cell=[f"{fmt_signed(r.mean, r.low, r.high)}{_star(r.sig)}" for r in matched.itertuples()])
    return _wide(shown, "cell", index=["scorer"])


def power_view(power: pd.DataFrame) -> pd.DataFrame:
    """The power table (`analysis.power.power_table`) for reading: one row per claim, class and S."""
    if power.empty:
        return power

    def count(v) -> str:
        return "-" if pd.isna(v) else f"{int(v)}"

    need = [count(r.seeds_for_paper) if not pd.isna(r.paper) else f"{count(r.seeds_for_equivalence)} (equivalence)"
            for r in power.itertuples()]  # fmt: skip
    return pd.DataFrame({
        "claim": power["claim"], "scorer": power["scorer"], "S": power["sparsity"].map("{:g}".format),
        "seeds": power["n_seeds"], "seed SD": power["seed_sd"].map("{:.2f}".format),
        "image SE": power["image_se"].map("{:.2f}".format), "family": power["family"],
        "seed share": power["seed_share"].map(lambda v: "-" if pd.isna(v) else f"{v:.0%}"),
        "MDE now (80%)": power["mde_now"].map("{:.2f}".format),
        "paper": power["paper"].map(lambda v: "no escape" if pd.isna(v) else f"+{v:g}"),
        "seeds needed": need,
    })  # fmt: skip


def throughput_view(speed: pd.DataFrame) -> pd.DataFrame:
    """The throughput table (`analysis.power.throughput`) for reading."""
    return pd.DataFrame({
        "sweep": speed["tag"], "precision": speed["precision"], "rows": speed["rows"],
        "median s/row": speed["median_s"].map("{:.1f}".format), "hours": speed["total_h"].map("{:.2f}".format),
        "rows/hour": speed["rows_per_hour"].map("{:.0f}".format),
    })  # fmt: skip


def seeds_view(shares: pd.DataFrame) -> pd.DataFrame:
    """Per class x S (`analysis.seeds.seed_shares`): seeds that escape on their own / seeds, the
    median per-seed escape with its distribution-free interval, and the outlier seeds (†)."""
    shown = shares.assign(cell=[f"{int(r.escaping)}/{int(r.n_seeds)}, median {fmt_signed(r.median, r.median_low, r.median_high)}"
                                + (f" † seed {r.outliers}" if r.outliers else "") for r in shares.itertuples()])  # fmt: skip
    return _wide(shown, "cell", index=["scorer", "kappa"]).rename(columns={"kappa": "κ"})
