"""Tables (csv/md/tex) and seaborn figures, all drawn from the tidy sweep rows.

Accuracy and escape are reported in accuracy points (percent) everywhere; the paper's figures
are converted to points before they are compared (protocol section 6).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .io import atomic_write, write_text
from .paths import figures_dir
from .provenance import caption
from .scorers import NINE, get_scorer
from .stats import mean_ci, paired_escape

ZONES = ((0.0, 0.65, "κ=0 zone"), (0.65, 0.75, "κ=1 zone"), (0.75, 1.0, "κ=2 zone"))
ZONE_COLORS = ("#e8f1fa", "#fdf1dc", "#fbe3e3")
KAPPA0 = ("magnitude", "magnitude_sq", "log_magnitude")


def _fmt(m: float, lo: float = np.nan, hi: float = np.nan, digits: int = 1) -> str:
    if np.isnan(m):
        return "–"
    s = f"{m:.{digits}f}"
    if not (np.isnan(lo) or np.isnan(hi)):
        s += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return s


def _fmt_signed(m: float, lo: float = np.nan, hi: float = np.nan, digits: int = 1) -> str:
    if np.isnan(m):
        return "–"
    m, lo, hi = (round(v, digits) + 0.0 for v in (m, lo, hi))  # no "-0.0"
    s = f"{m:+.{digits}f}"
    if not (np.isnan(lo) or np.isnan(hi)):
        s += f" [{lo:+.{digits}f}, {hi:+.{digits}f}]"
    return s


# --- aggregation -----------------------------------------------------------------------------


def summarize(study, rows: pd.DataFrame, *, n_boot: int = 2000) -> pd.DataFrame:
    """One row per (scorer, S, allocation, recovery): accuracy over seeds and paired escape.

    Escape is measured against the plateau Π(S) = magnitude's selection under the same
    allocation and recovery, on the same test images (paired bootstrap).
    """
    out = []
    groups = rows.groupby(["scorer", "sparsity", "allocation", "recovery_steps", "params"], sort=False)
    for (scorer, S, alloc, rec, params), g in groups:
        ref = study.correct(study.magnitude_masks(S, alloc), int(rec))
        correct = np.stack([study.correct_for_row(r) for r in g.itertuples()])
        esc = paired_escape(correct, ref, n_boot=n_boot)
        acc = g["accuracy"].to_numpy() * 100
        m, lo, hi = mean_ci(acc)
        out.append(dict(
            scorer=scorer, kappa=get_scorer(scorer).kappa, kappa_hat=int(g["kappa_hat"].mode().max()),
            sparsity=S, allocation=alloc, recovery_steps=int(rec), params=params, n_seeds=len(g),
            acc=m, acc_low=lo, acc_high=hi, acc_std=float(np.std(acc, ddof=1)) if len(g) > 1 else 0.0,
            plateau=float(ref.mean() * 100), escape=esc.mean, escape_low=esc.low,
            escape_high=esc.high, escape_p=esc.p_value,
            overlap_magnitude=float(g["overlap_magnitude"].mean()),
            jaccard_magnitude=float(g["jaccard_magnitude"].mean()),
            same_mask_as_magnitude=bool((g["jaccard_magnitude"] == 1.0).all()),
            mask_hash=g["mask_hash"].iloc[0] if g["mask_hash"].nunique() == 1 else "(varies)",
        ))  # fmt: skip
    return pd.DataFrame(out)


# --- saving ------------------------------------------------------------------------------------


def save_table(df: pd.DataFrame, name: str, study, *, shown: pd.DataFrame | None = None,
               title: str = "") -> dict[str, Path]:  # fmt: skip
    """`name`.csv (numeric, tidy) plus `name`.md and `name`.tex (formatted `shown`)."""
    out = figures_dir(study.profile.name)
    shown = df if shown is None else shown
    cap = caption(study)
    paths = {
        "csv": atomic_write(out / f"{name}.csv", lambda p: df.to_csv(p, index=False)),
        "md": write_text(out / f"{name}.md", f"**{title}**\n\n{shown.to_markdown(index=False)}\n\n_{cap}_\n"),
        "tex": write_text(out / f"{name}.tex", _latex(shown, title, cap, name)),
    }  # fmt: skip
    return paths


LATEX = {"κ̂": r"$\hat\kappa$", "κ": r"$\kappa$", "Π": r"$\Pi$", "λ": r"$\lambda$", "φ": r"$\phi$",
         "σ": r"$\sigma$", "≈": r"$\approx$", "≡": r"$\equiv$", "−": "-", "–": "--", "_": r"\_",
         "%": r"\%", "&": r"\&", "#": r"\#", "|": r"$|$", "x̃": "x", "m̃": r"$\tilde m$"}  # fmt: skip


def latex_escape(text) -> str:
    out = str(text).replace("\\", r"\textbackslash{}")
    for k, v in LATEX.items():  # κ̂ before κ: dicts keep insertion order
        out = out.replace(k, v)
    return out


def _latex(df: pd.DataFrame, title: str, cap: str, name: str) -> str:
    body = df.rename(columns=latex_escape).map(latex_escape)
    return body.to_latex(index=False, escape=False, caption=latex_escape(f"{title}. {cap}"), label=f"tab:{name}")


def save_figure(fig: plt.Figure, name: str, study) -> dict[str, Path]:
    """`name`.pdf and `name`.png, with the provenance line at the foot."""
    fig.text(0.01, 0.003, caption(study), fontsize=6, color="0.4", va="bottom")
    out = figures_dir(study.profile.name)
    return {
        ext: atomic_write(out / f"{name}.{ext}", lambda p, e=ext: fig.savefig(p, format=e, dpi=150, bbox_inches="tight"))
        for ext in ("pdf", "png")
    }


# --- tables ------------------------------------------------------------------------------------


def table1(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Selection plateau: κ=0 scorers, gradient, random x S: accuracy and Jaccard with magnitude."""
    df = summary[summary["scorer"].isin([*KAPPA0, "gradient", "random"])].copy()
    cols = ["scorer", "kappa", "sparsity", "n_seeds", "acc", "acc_low", "acc_high",
            "jaccard_magnitude", "same_mask_as_magnitude", "mask_hash"]  # fmt: skip
    df = df[cols]
    shown = df.assign(cell=[f"{_fmt(r.acc, r.acc_low, r.acc_high)} (J={r.jaccard_magnitude:.2f})"
                            for r in df.itertuples()])  # fmt: skip
    shown = _wide(shown, "cell", index=["scorer", "kappa"])
    return df, shown


def table2(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """κ spectrum: the nine classes x S: accuracy and escape (points), with κ and κ̂."""
    df = summary[summary["scorer"].isin(NINE)].copy()
    df = df[["scorer", "kappa", "kappa_hat", "sparsity", "n_seeds", "acc", "acc_low", "acc_high",
             "escape", "escape_low", "escape_high", "escape_p", "overlap_magnitude"]]  # fmt: skip
    shown = df.assign(cell=[f"{r.acc:.1f} / {_fmt_signed(r.escape, r.escape_low, r.escape_high)}"
                            for r in df.itertuples()])  # fmt: skip
    shown = _wide(shown, "cell", index=["scorer", "kappa", "kappa_hat"])
    shown = shown.rename(columns={"kappa_hat": "κ̂", "kappa": "κ"})
    return df, shown


PAPER_REGIMES = {0.5: ("0", "plateau optimal"), 0.6: ("0", "plateau optimal"),
                 0.7: ("1", "smooth escapes, best +6.6"), 0.8: ("2", "only raw escapes, +2.6")}  # fmt: skip


def paper_regime(S: float) -> tuple[str, str]:
    """The regime the paper states for S (its boundaries: 0.65 and 0.75)."""
    if S in PAPER_REGIMES:
        return PAPER_REGIMES[S]
    return ("0", "plateau optimal") if S < 0.65 else ("1", "smooth escapes") if S <= 0.75 else ("2", "only raw escapes")


def table3(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """SICS regimes: per S, the lowest κ whose best class escapes significantly, and the best class."""
    rows = []
    nm = summary[summary["kappa"].isin(["1", "2"])]
    for S, g in nm.groupby("sparsity"):
        best = g.loc[g["escape"].idxmax()]
        sig = g[g["escape_low"] > 0]
        lowest = sig.sort_values(["kappa", "escape"], ascending=[True, False]).head(1)
        kappa, reg = paper_regime(S)
        rows.append(dict(
            sparsity=S,
            lowest_escaping_kappa="0 (none escapes)" if lowest.empty else lowest["kappa"].iloc[0],
            lowest_escaping_class="–" if lowest.empty else lowest["scorer"].iloc[0],
            lowest_escape=np.nan if lowest.empty else lowest["escape"].iloc[0],
            lowest_escape_low=np.nan if lowest.empty else lowest["escape_low"].iloc[0],
            lowest_escape_high=np.nan if lowest.empty else lowest["escape_high"].iloc[0],
            best_class=best["scorer"], best_kappa=best["kappa"], best_escape=best["escape"],
            best_escape_low=best["escape_low"], best_escape_high=best["escape_high"],
            paper_kappa=kappa, paper_regime=reg,
        ))  # fmt: skip
    df = pd.DataFrame(rows)
    shown = pd.DataFrame({
        "S": df["sparsity"],
        "lowest κ escaping (ours)": df["lowest_escaping_kappa"],
        "its class, escape [95% CI]": ["–" if r.lowest_escaping_class == "–" else
                                       f"{r.lowest_escaping_class} {_fmt_signed(r.lowest_escape, r.lowest_escape_low, r.lowest_escape_high)}"
                                       for r in df.itertuples()],
        "best class (κ), escape [95% CI]": [f"{r.best_class} ({r.best_kappa}) {_fmt_signed(r.best_escape, r.best_escape_low, r.best_escape_high)}"
                                             for r in df.itertuples()],
        "paper: κ, regime": [f"{r.paper_kappa}: {r.paper_regime}" for r in df.itertuples()],
    })  # fmt: skip
    return df, shown


def _first(g: pd.DataFrame, scorer: str) -> pd.Series | None:
    hit = g[g["scorer"] == scorer]
    return hit.iloc[0] if len(hit) else None


def table4(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fake control: fake_nonmonotone vs gradient vs Π(S) vs the best magnitude-independent class."""
    rows = []
    for S, g in summary.groupby("sparsity"):
        fake, grad = _first(g, "fake_nonmonotone"), _first(g, "gradient")
        indep = g[g["kappa"].isin(["1", "2"])]
        best = indep.loc[indep["escape"].idxmax()] if len(indep) else None
        rows.append(dict(
            sparsity=S, plateau=g["plateau"].iloc[0],
            fake=np.nan if fake is None else fake["acc"],
            gradient=np.nan if grad is None else grad["acc"],
            gradient_low=np.nan if grad is None else grad["acc_low"],
            gradient_high=np.nan if grad is None else grad["acc_high"],
            best_independent=None if best is None else best["scorer"],
            best_independent_acc=np.nan if best is None else best["acc"],
            fake_minus_gradient=np.nan if fake is None or grad is None else fake["acc"] - grad["acc"],
        ))  # fmt: skip
    df = pd.DataFrame(rows)
    shown = pd.DataFrame({
        "S": df["sparsity"], "Π(S)": df["plateau"].map("{:.1f}".format),
        "fake_nonmonotone": df["fake"].map("{:.1f}".format),
        "gradient [95% CI]": [_fmt(r.gradient, r.gradient_low, r.gradient_high) for r in df.itertuples()],
        "best magnitude-independent": [f"{r.best_independent} {r.best_independent_acc:.1f}" for r in df.itertuples()],
        "fake − gradient": df["fake_minus_gradient"].map("{:+.1f}".format),
    })  # fmt: skip
    return df, shown


PAPER_BUMP, PAPER_CHAOS = 0.6, 4.6  # C6, converted from fractions (+0.006 / +0.046) to points


def table5(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Bump vs chaos: escape of `bump` and `logistic_smooth` per S, beside the paper's figures."""
    rows = []
    for S, g in summary.groupby("sparsity"):
        b = g[g["scorer"] == "bump"].iloc[0]
        c = g[g["scorer"] == "logistic_smooth"].iloc[0]
        rows.append(dict(sparsity=S, bump=b["escape"], bump_low=b["escape_low"], bump_high=b["escape_high"],
                         chaos=c["escape"], chaos_low=c["escape_low"], chaos_high=c["escape_high"],
                         bump_overlap=b["overlap_magnitude"], chaos_overlap=c["overlap_magnitude"],
                         paper_bump=PAPER_BUMP, paper_chaos=PAPER_CHAOS))  # fmt: skip
    df = pd.DataFrame(rows)
    shown = pd.DataFrame({
        "S": df["sparsity"],
        "bump escape [95% CI]": [_fmt_signed(r.bump, r.bump_low, r.bump_high) for r in df.itertuples()],
        "logistic_smooth escape [95% CI]": [_fmt_signed(r.chaos, r.chaos_low, r.chaos_high) for r in df.itertuples()],
        "kept shared with magnitude (bump / chaos)": [f"{r.bump_overlap:.2f} / {r.chaos_overlap:.2f}" for r in df.itertuples()],
        "paper (S not stated)": f"+{PAPER_BUMP} / +{PAPER_CHAOS}",
    })  # fmt: skip
    return df, shown


def _wide(df: pd.DataFrame, value: str, index: list[str]) -> pd.DataFrame:
    wide = df.pivot_table(index=index, columns="sparsity", values=value, aggfunc="first", sort=False)
    wide.columns = [f"S={c:g}" for c in wide.columns]
    return wide.reset_index()


# --- figures -----------------------------------------------------------------------------------


def _class_palette(names) -> dict[str, tuple]:
    kappa_cmaps = {"0": "Greys", "1": "Blues", "2": "Reds", "control": "Greens"}
    pal = {"gradient": "#e67e22", "random": "#7f8c8d", "bump": "#8e44ad"}  # baselines: distinct hues
    for kappa, cmap in kappa_cmaps.items():
        members = [n for n in names if get_scorer(n).kappa == kappa]
        colors = sns.color_palette(cmap, len(members) + 2)[2:]
        pal.update(zip(members, colors, strict=True))
    return pal


def shade_zones(ax, boundaries=(0.65, 0.75)) -> None:
    edges = (0.0, *boundaries, 1.0)
    for (lo, hi), color, (_, _, label) in zip(zip(edges, edges[1:]), ZONE_COLORS, ZONES):
        ax.axvspan(lo, hi, color=color, zorder=0, lw=0)
        ax.text((max(lo, ax.get_xlim()[0]) + min(hi, ax.get_xlim()[1])) / 2, 0.99, label,
                transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=8, color="0.35")  # fmt: skip


def _curves(df: pd.DataFrame, value: str, pad: float, figsize=(7.5, 4.5)) -> tuple[plt.Figure, plt.Axes]:
    """One line per scorer of `value` vs S with its 95% band, on the shaded κ zones.

    `magnitude` is drawn thick as the plateau; the other κ=0 scorers, identical to it by
    construction (checked in Table 1), are not drawn again.
    """
    names = [n for n in dict.fromkeys(df["scorer"]) if n not in KAPPA0[1:]]
    pal = _class_palette(names)
    fig, ax = plt.subplots(figsize=figsize)
    xs = sorted(df["sparsity"].unique())
    ax.set_xlim(min(xs) - pad, max(xs) + pad)
    shade_zones(ax)
    for name in names:
        g = df[df["scorer"] == name].sort_values("sparsity")
        style = (dict(lw=3.2, color="black", zorder=5, label="Π(S): magnitude (= all κ=0)")
                 if name == "magnitude" else
                 dict(lw=1.4, color=pal[name], marker="o", ms=3.5, label=f"{name} (κ={get_scorer(name).kappa})"))  # fmt: skip
        ax.plot(g["sparsity"], g[value], **style)
        lo = g[f"{value}_low"].fillna(g[value])
        hi = g[f"{value}_high"].fillna(g[value])
        ax.fill_between(g["sparsity"], lo, hi, color=style["color"], alpha=0.1, lw=0)
    return fig, ax


def figure1(summary: pd.DataFrame, study, *, dense: float | None = None) -> plt.Figure:
    """Accuracy vs S for every class, with interval bands; the plateau drawn thick; κ zones shaded."""
    df = summary[summary["scorer"].isin([*NINE, "gradient", "random", "bump"])]
    fig, ax = _curves(df, "acc", pad=0.03, figsize=(7.5, 4.6))
    if dense is not None:
        ax.axhline(dense * 100, ls="--", color="0.3", lw=1, label=f"dense {dense * 100:.1f}")
    ax.set_xlabel("sparsity S (fraction of MLP channels removed per block)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Accuracy vs sparsity: plateau and feature classes (bands: 95% CI over seeds)")
    ax.legend(fontsize=7, ncol=2, loc="lower left", framealpha=0.9)
    fig.tight_layout()
    return fig


def figure2(study, S: float = 0.7, block: int = 0, seed: int = 0) -> plt.Figure:
    """Feature shapes: each class's score along rank u (normalised), the cut u* = S marked."""
    names = (*NINE, "bump")
    fig, axes = plt.subplots(2, 5, figsize=(13, 5.2), sharex=True)
    stats = study.stats[block]
    u = np.sort(stats.u)
    for ax, name in zip(axes.flat, names):
        scores, masks = study.masks(name, S, seed)
        s = scores[block][stats.rank_order]
        kept = masks[block][stats.rank_order]
        s = (s - s.min()) / (s.max() - s.min() + 1e-12)
        ax.scatter(u[~kept], s[~kept], s=2, color="#c0392b", label="pruned")
        ax.scatter(u[kept], s[kept], s=2, color="#2471a3", label="kept")
        ax.axvline(S, color="black", lw=0.8, ls="--")
        ax.set_title(f"{name} (κ={get_scorer(name).kappa})", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("rank u")
    for ax in axes[:, 0]:
        ax.set_ylabel("score (min-max)")
    axes.flat[0].legend(fontsize=7, markerscale=4, loc="upper left")
    fig.suptitle(f"Scores read along magnitude rank at S={S} (block {block}, seed {seed}); dashed: u*=S")
    fig.tight_layout()
    return fig


def figure3(summary: pd.DataFrame, study) -> plt.Figure:
    """Escape heat-map, class x S, annotated with κ (rows) and the escape in points."""
    df = summary[summary["scorer"].isin(NINE)]
    grid = df.pivot_table(index="scorer", columns="sparsity", values="escape", sort=False)
    grid = grid.reindex([n for n in NINE if n in grid.index])
    sig = df.pivot_table(index="scorer", columns="sparsity", values="escape_low", sort=False).reindex(grid.index)
    sig_hi = df.pivot_table(index="scorer", columns="sparsity", values="escape_high", sort=False).reindex(grid.index)
    labels = grid.map(lambda v: f"{v:+.1f}") + np.where((sig > 0) | (sig_hi < 0), "*", "")
    grid.index = [f"{n} (κ={get_scorer(n).kappa})" for n in grid.index]
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    lim = max(1.0, float(np.nanmax(np.abs(grid.to_numpy()))))
    sns.heatmap(grid, annot=labels.to_numpy(), fmt="", cmap="RdBu", center=0, vmin=-lim, vmax=lim,
                cbar_kws={"label": "escape (accuracy points)"}, ax=ax, linewidths=0.5)  # fmt: skip
    ax.set_xlabel("sparsity S")
    ax.set_ylabel("")
    ax.set_title("Escape from the plateau (* : 95% CI excludes 0)")
    fig.tight_layout()
    return fig


def training_curve(history: pd.DataFrame, study) -> plt.Figure:
    fig, ax1 = plt.subplots(figsize=(6, 3.6))
    ax1.plot(history["epoch"], history["train_loss"], color="#2471a3", marker="o", ms=3)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss", color="#2471a3")
    ax2 = ax1.twinx()
    ax2.plot(history["epoch"], history["test_accuracy"] * 100, color="#c0392b", marker="s", ms=3)
    ax2.set_ylabel("test accuracy (%)", color="#c0392b")
    ax1.set_title(f"Dense model training ({study.profile.name} profile)")
    fig.tight_layout()
    return fig


def dense_table(study) -> pd.DataFrame:
    """The dense model's accuracy and how it was made (saved as dense.csv/md/tex)."""
    p = study.profile
    df = pd.DataFrame([dict(
        profile=p.name, model=f"{p.model_name} {p.depth}x{p.embed_dim} H={p.mlp_hidden} patch {p.patch_size} @ {p.img_size}px",
        pretrained=p.pretrained, epochs=p.epochs, test_accuracy=round(study.dense_accuracy * 100, 2),
        n_test=len(study.test), n_train=len(study.data.train_y), data=study.data.source,
        ckpt_id=study.trained.ckpt_id, train_seed=p.train_seed,
    )])  # fmt: skip
    save_table(df, "dense", study, title="Dense model")
    return df


# --- beyond the paper: the phase diagram -------------------------------------------------------


def regime_boundaries(summary: pd.DataFrame) -> tuple[float | None, float | None]:
    """Where this run puts the paper's regime boundaries (the paper: 0.65 and 0.75).

    b1 = the lowest S at which some non-monotone (κ=1 or κ=2) class escapes significantly;
    b2 = the lowest S ≥ b1 at which the best κ=2 class escapes significantly and beats the best
    κ=1 class. None where that never happens on the grid.
    """
    nm = summary[summary["kappa"].isin(["1", "2"])]
    sig = nm[nm["escape_low"] > 0]
    b1 = float(sig["sparsity"].min()) if len(sig) else None
    b2 = None
    if b1 is not None:
        for S, g in nm[nm["sparsity"] >= b1].groupby("sparsity"):
            k1, k2 = g[g["kappa"] == "1"], g[g["kappa"] == "2"]
            if len(k2) and (k2["escape_low"] > 0).any() and (not len(k1) or k2["escape"].max() > k1["escape"].max()):
                b2 = float(S)
                break
    return b1, b2


def figure_phase(summary: pd.DataFrame, study) -> plt.Figure:
    """Escape vs S on the fine grid for every non-monotone class, with both sets of boundaries."""
    df = summary[summary["kappa"].isin(["1", "2", "control"])]
    fig, ax = _curves(df, "escape", pad=0.01, figsize=(7.5, 4.4))
    ax.axhline(0, color="black", lw=1)
    for b in (0.65, 0.75):
        ax.axvline(b, color="0.4", ls="--", lw=1)
    b1, b2 = regime_boundaries(summary)
    marks = {}
    for b, label in ((b1, "first escape"), (b2, "κ=2 takes over")):
        if b is not None:
            marks.setdefault(b, []).append(label)
    for b, labels in marks.items():
        ax.axvline(b, color="#117a65", lw=2, alpha=0.7)
        ax.text(b, 0.98, f" ours: {' = '.join(labels)} (S={b:g})", transform=ax.get_xaxis_transform(),
                rotation=90, fontsize=7, color="#117a65", va="top", ha="right")  # fmt: skip
    ax.set_xlabel("sparsity S")
    ax.set_ylabel("escape from Π(S) (accuracy points)")
    ax.set_title("Phase diagram: escape vs S (bands: 95% paired CI; dashed: the paper's 0.65 / 0.75)")
    ax.legend(fontsize=7, ncol=2, loc="lower left", framealpha=0.9)
    fig.tight_layout()
    return fig


def claims_table(ledger: pd.DataFrame) -> pd.DataFrame:
    """The ledger as shown (markdown/LaTeX): statement, paper, ours, verdict."""
    return ledger[["claim", "statement", "paper", "where", "measured", "verdict"]]
