"""Seaborn figures, drawn from the analysis (presentation only).

Bands are 95% intervals: over seeds for accuracy, paired (seed and image variance combined) for
escape. Significance marks use Holm's adjustment over the figure's family (every non-κ=0
feature class at every S drawn; `analysis.escape_family`).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..analysis.summaries import ESCAPE_KAPPAS, escape_family, regime_boundaries
from ..files import atomic_write
from ..paper import BOUNDARIES as PAPER_BOUNDARIES
from ..selection.scorers import baselines, feature_classes, get_scorer, kappa0
from .output import Output

ZONES = ((0.0, PAPER_BOUNDARIES[0], "κ=0 zone"), (*PAPER_BOUNDARIES, "κ=1 zone"),
         (PAPER_BOUNDARIES[1], 1.0, "κ=2 zone"))  # the paper's zones
ZONE_COLORS = ("#e8f1fa", "#fdf1dc", "#fbe3e3")


# No creation date and no software version in the files: the same figure gives the same bytes
# on every run (provenance.json records the versions).
METADATA = {"pdf": {"CreationDate": None, "Producer": None, "Creator": None}, "png": {"Software": None}}


def wrap_caption(caption: str, width_in: float, fontsize: float = 6) -> str:
    """The caption broken at its " | " fields into lines no wider than the figure (a single field
    wider than that keeps a line of its own), so a long caption does not widen the saved figure
    (bbox "tight" grows to fit any text)."""
    limit = max(40, int(width_in * 72 / (0.55 * fontsize)))  # characters per line, ~0.55 em each
    lines: list[str] = []
    for field in caption.split(" | "):
        if lines and len(lines[-1]) + 3 + len(field) <= limit:
            lines[-1] += " | " + field
        else:
            lines.append(field)
    return "\n".join(lines)


def save_figure(fig: plt.Figure, name: str, out: Output) -> dict[str, Path]:
    """`name`.pdf and `name`.png in `out`'s folder, with its caption at the foot (deterministic bytes)."""
    fig.text(0.01, 0.0, wrap_caption(out.caption, fig.get_figwidth()), fontsize=6, color="0.4", va="top")
    return {
        ext: atomic_write(out.folder / f"{name}.{ext}", lambda p, e=ext: fig.savefig(
            p, format=e, dpi=150, bbox_inches="tight", metadata=METADATA[e]))
        for ext in ("pdf", "png")
    }


# --- figures -----------------------------------------------------------------------------------


BASELINE_COLORS = {"gradient": "#e67e22", "random": "#7f8c8d", "bump": "#8e44ad"}  # distinct hues


def _class_palette(kinds: dict[str, str]) -> dict[str, tuple]:
    """A colour for every scorer in `kinds` (name -> κ class): a shade of its class's colour map
    for the feature classes, the baselines' own hues, and for any other baseline or class (a
    scorer registered since) the next colour of a qualitative palette."""
    kappa_cmaps = {"0": "Greys", "1": "Blues", "2": "Reds", "control": "Greens"}
    pal = dict(BASELINE_COLORS)
    for kappa, cmap in kappa_cmaps.items():
        members = [n for n, k in kinds.items() if k == kappa]
        colors = sns.color_palette(cmap, len(members) + 2)[2:]
        pal.update(zip(members, colors, strict=True))
    others = [n for n in kinds if n not in pal]
    pal.update(zip(others, sns.color_palette("Dark2", len(others)), strict=True))
    return pal


def shade_zones(ax, boundaries=PAPER_BOUNDARIES) -> None:
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
    fig, ax = plt.subplots(figsize=figsize)
    xs = sorted(df["sparsity"].unique())
    ax.set_xlim(min(xs) - pad, max(xs) + pad)
    shade_zones(ax)
    _draw_curves(ax, df, value)
    return fig, ax


def _draw_curves(ax: plt.Axes, df: pd.DataFrame, value: str) -> None:
    """The lines and 95% bands of `_curves` on `ax` (κ=0 scorers but magnitude left out)."""
    names = [n for n in dict.fromkeys(df["scorer"]) if n not in kappa0()[1:]]
    kinds = {n: str(df.loc[df["scorer"] == n, "kappa"].iloc[0]) for n in names}  # as the rows say
    pal = _class_palette(kinds)
    for name in names:
        g = df[df["scorer"] == name].sort_values("sparsity")
        style = (dict(lw=3.2, color="black", zorder=5, label="Π(S): magnitude (= all κ=0)")
                 if name == "magnitude" else
                 dict(lw=1.4, color=pal[name], marker="o", ms=3.5, label=f"{name} (κ={kinds[name]})"))  # fmt: skip
        ax.plot(g["sparsity"], g[value], **style)
        lo = g[f"{value}_low"].fillna(g[value])
        hi = g[f"{value}_high"].fillna(g[value])
        ax.fill_between(g["sparsity"], lo, hi, color=style["color"], alpha=0.1, lw=0)


def _escape_guides(ax: plt.Axes) -> None:
    """The zero line of an escape plot and the paper's regime boundaries (dashed)."""
    ax.axhline(0, color="black", lw=1)
    for b in PAPER_BOUNDARIES:
        ax.axvline(b, color="0.4", ls="--", lw=1)


def _finish(fig: plt.Figure, ax: plt.Axes, xlabel: str, ylabel: str, title: str) -> plt.Figure:
    """Labels, title and the legend of a curve figure (figure 1, the phase diagram)."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, loc="lower left", framealpha=0.9)
    fig.tight_layout()
    return fig


def figure1(summary: pd.DataFrame, *, dense: float | None = None) -> plt.Figure:
    """Accuracy vs S for every class, with interval bands; the plateau drawn thick; κ zones shaded."""
    df = summary[summary["scorer"].isin([*feature_classes(), *baselines()])]
    fig, ax = _curves(df, "acc", pad=0.03, figsize=(7.5, 4.5))
    if dense is not None:
        ax.axhline(dense * 100, ls="--", color="0.3", lw=1, label=f"dense {dense * 100:.1f}")
    return _finish(fig, ax, "sparsity S (fraction of MLP channels removed per block)", "test accuracy (%)",
                   "Accuracy vs sparsity: plateau and feature classes (bands: 95% CI over seeds)")


def figure2(shapes: pd.DataFrame, S: float = 0.7, block: int = 0, seed: int = 0) -> plt.Figure:
    """Feature shapes: each class's score along rank u (normalised), the cut u* = S marked.

    `shapes`: one row per unit of the block and class (`Stage.feature_shapes`: scorer, kappa, u,
    score, kept)."""
    names = list(dict.fromkeys(shapes["scorer"]))
    rows = -(-len(names) // 5)
    fig, axes = plt.subplots(rows, 5, figsize=(13, 2.5 * rows), sharex=True, squeeze=False)
    for ax in axes.flat[len(names):]:
        ax.set_visible(False)
    for ax, (name, d) in zip(axes.flat, shapes.groupby("scorer", sort=False)):
        kept = d["kept"].to_numpy()
        u, s = d["u"].to_numpy(), d["score"].to_numpy()
        ax.scatter(u[~kept], s[~kept], s=2, color="#c0392b", label="pruned")
        ax.scatter(u[kept], s[kept], s=2, color="#2471a3", label="kept")
        ax.axvline(S, color="black", lw=0.8, ls="--")
        ax.set_title(f"{name} (κ={d['kappa'].iloc[0]})", fontsize=9)
    for ax in axes[-1]:
        ax.set_xlabel("rank u")
    for ax in axes[:, 0]:
        ax.set_ylabel("score (min-max)")
    axes.flat[0].legend(fontsize=7, markerscale=4, loc="upper left")
    fig.suptitle(f"Scores read along magnitude rank at S={S} (block {block}, seed {seed}); dashed: u*=S")
    fig.tight_layout()
    return fig


def figure3(summary: pd.DataFrame) -> plt.Figure:
    """Escape heat-map, class x S, annotated with κ (rows) and the escape in points."""
    names = feature_classes()
    df = summary[summary["scorer"].isin(names)]
    df = df.join(escape_family(df)[["sig"]]).fillna({"sig": ""})
    grid = df.pivot_table(index="scorer", columns="sparsity", values="escape", sort=False)
    grid = grid.reindex([n for n in names if n in grid.index])
    star = df.assign(star=df["sig"].ne("").map({True: "*", False: ""})).pivot_table(
        index="scorer", columns="sparsity", values="star", aggfunc="first", sort=False
    ).reindex(index=grid.index, columns=grid.columns).fillna("")
    labels = grid.map(lambda v: f"{v:+.1f}") + star
    grid.index = [f"{n} (κ={get_scorer(n).kappa})" for n in grid.index]
    fig, ax = plt.subplots(figsize=(6.5, 4.8))
    lim = max(1.0, float(np.nanmax(np.abs(grid.to_numpy()))))
    sns.heatmap(grid, annot=labels.to_numpy(), fmt="", cmap="RdBu", center=0, vmin=-lim, vmax=lim,
                cbar_kws={"label": "escape (accuracy points)"}, ax=ax, linewidths=0.5)  # fmt: skip
    ax.set_xlabel("sparsity S")
    ax.set_ylabel("")
    ax.set_title("Escape from the plateau (*: significant, Holm over the map)")
    fig.tight_layout()
    return fig


def training_curve(history: pd.DataFrame, profile: str) -> plt.Figure:
    fig, ax1 = plt.subplots(figsize=(6, 3.6))
    ax1.plot(history["epoch"], history["train_loss"], color="#2471a3", marker="o", ms=3)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("train loss", color="#2471a3")
    ax2 = ax1.twinx()
    ax2.plot(history["epoch"], history["test_accuracy"] * 100, color="#c0392b", marker="s", ms=3)
    ax2.set_ylabel("test accuracy (%)", color="#c0392b")
    ax1.set_title(f"Dense model training ({profile} profile)")
    fig.tight_layout()
    return fig


# --- beyond the paper: the phase diagram -------------------------------------------------------


def figure_phase(summary: pd.DataFrame) -> plt.Figure:
    """Escape vs S on the fine grid for every non-monotone class, with both sets of boundaries."""
    df = summary[summary["kappa"].isin(ESCAPE_KAPPAS)]
    fig, ax = _curves(df, "escape", pad=0.01, figsize=(7.5, 4.4))
    _escape_guides(ax)
    b1, b2 = regime_boundaries(summary)
    marks = {}
    for b, label in ((b1, "first escape"), (b2, "κ=2 takes over")):
        if b is not None:
            marks.setdefault(b, []).append(label)
    for b, labels in marks.items():
        ax.axvline(b, color="#117a65", lw=2, alpha=0.7)
        ax.text(b, 0.98, f" ours: {' = '.join(labels)} (S={b:g})", transform=ax.get_xaxis_transform(),
                rotation=90, fontsize=7, color="#117a65", va="top", ha="right")  # fmt: skip
    return _finish(fig, ax, "sparsity S", "escape from Π(S) (accuracy points)",
                   f"Phase diagram: escape vs S (bands: 95% paired CI; dashed: the paper's {PAPER_BOUNDARIES[0]:g} / "
                   f"{PAPER_BOUNDARIES[1]:g})")


# --- beyond the paper: other pruning units -----------------------------------------------------


def figure_units(summaries: dict[str, pd.DataFrame | None]) -> plt.Figure:
    """Escape vs S of every non-monotone class, one panel per unit kind, side by side.

    `summaries` maps a panel title (e.g. "ViT MLP channels", "tokens") to its summary; a missing
    one (None) draws an empty panel that says so. Bands: 95% paired intervals.
    """
    fig, axes = plt.subplots(1, len(summaries), figsize=(5.2 * len(summaries), 4.2), sharey=True, squeeze=False)
    for ax, (title, summary) in zip(axes[0], summaries.items(), strict=True):
        if summary is None or summary.empty:
            ax.text(0.5, 0.5, "no saved results\n(run notebooks 03 and 06 first)", ha="center",
                    va="center", transform=ax.transAxes, color="0.4")  # fmt: skip
            ax.set_title(title)
            continue
        _draw_curves(ax, summary[summary["kappa"].isin(ESCAPE_KAPPAS)], "escape")
        _escape_guides(ax)
        ax.set_title(title)
        ax.set_xlabel("sparsity S")
    axes[0, 0].set_ylabel("escape from Π(S) (accuracy points)")
    handles, labels = axes[0, -1].get_legend_handles_labels()
    if handles:
        axes[0, -1].legend(handles, labels, fontsize=7, loc="lower left", framealpha=0.9)
    fig.suptitle("Escape vs S per κ class, by pruning unit (bands: 95% paired CI; dashed: the paper's boundaries)")
    fig.tight_layout()
    return fig


# --- beyond the paper: published criteria ------------------------------------------------------


def figure_criteria(crit: pd.DataFrame, classes: pd.DataFrame) -> plt.Figure:
    """Accuracy vs S of every published criterion (bands: 95% CI over seeds), beside the plateau
    Π(S) and the range of the feature classes' mean accuracies (grey, at the S of `classes`)."""
    fig, ax = plt.subplots(figsize=(9.0, 4.5))
    band = classes.groupby("sparsity")["acc"].agg(["min", "max"]).sort_index()
    ax.fill_between(band.index, band["min"], band["max"], color="0.85", label="feature classes (range)")
    plateau = crit.groupby("sparsity")["plateau"].first().sort_index()
    ax.plot(plateau.index, plateau.to_numpy(), color="black", lw=2.5, label="plateau Π(S)")
    names = list(dict.fromkeys(crit["scorer"]))
    colours = dict(zip(names, sns.color_palette("tab20", len(names)), strict=True))
    for (name, alloc), d in crit.groupby(["scorer", "allocation"], sort=False):
        d = d.sort_values("sparsity")
        label = name if alloc == "block" else f"{name} ({alloc})"
        ax.plot(d["sparsity"], d["acc"], marker="o", ms=3, lw=1.2, color=colours[name], label=label,
                ls="-" if alloc == "block" else "--")  # fmt: skip
        ax.fill_between(d["sparsity"], d["acc_low"], d["acc_high"], color=colours[name], alpha=0.12, lw=0)
    ax.set_xlabel("sparsity S")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title("Published criteria against the plateau (bands: 95% CI over seeds)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # beside: the curves fill the axes
    fig.tight_layout()
    return fig


def figure_seeds(seeds: pd.DataFrame) -> plt.Figure:
    """Each seed's own escape, per class and S (`analysis.seeds.per_seed`): filled where the seed's
    selection escapes on its own (exact paired test, Holm over the seeds), ringed where an outlier."""
    grid = sorted(seeds["sparsity"].unique())
    fig, axes = plt.subplots(1, len(grid), figsize=(3.2 * len(grid), 4.2), sharey=True, squeeze=False)
    names = list(dict.fromkeys(seeds["scorer"]))
    colours = _class_palette({n: str(k) for n, k in zip(seeds["scorer"], seeds["kappa"], strict=True)})
    for ax, S in zip(axes[0], grid, strict=True):
        at = seeds[seeds["sparsity"] == S]
        for i, name in enumerate(names):
            d = at[at["scorer"] == name]
            x = i + np.linspace(-0.18, 0.18, len(d)) if len(d) > 1 else np.full(len(d), float(i))
            ax.scatter(x, d["escape"], s=22, color=colours[name], edgecolors=colours[name],
                       facecolors=[colours[name] if e else "none" for e in d["escapes"]])  # fmt: skip
            out = d["outlier"].to_numpy()
            ax.scatter(x[out], d["escape"][out], s=90, facecolors="none", edgecolors="black", lw=0.8)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xticks(range(len(names)), names, rotation=70, fontsize=7)
        ax.set_title(f"S={S:g}")
    axes[0, 0].set_ylabel("per-seed escape from Π(S) (points)")
    fig.suptitle("Seeds as a distribution: filled = the seed escapes on its own (Holm over seeds); ringed = outlier")
    fig.tight_layout()
    return fig


def figure_runs(per_run: dict[int, pd.DataFrame], recipe: pd.DataFrame) -> plt.Figure:
    """Every training run's escape with its 95% interval (over its seeds), per S and class,
    beside the recipe-level escape (black: the interval across runs, shared images carried)."""
    classes = [n for n in recipe["scorer"].unique()
               if str(recipe.loc[recipe["scorer"] == n, "kappa"].iloc[0]) in (*ESCAPE_KAPPAS, "baseline")]  # fmt: skip
    cols = 4
    rows_n = -(-len(classes) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(3.0 * cols, 2.4 * rows_n), sharex=True, squeeze=False)
    runs = sorted(per_run)
    pal = sns.color_palette("colorblind", len(runs))
    width = 0.04
    grid = sorted(recipe["sparsity"].unique())
    for ax, name in zip(axes.flat, classes):
        for i, k in enumerate(runs):
            d = per_run[k]
            d = d[d["scorer"] == name].sort_values("sparsity")
            x = d["sparsity"] + (i - (len(runs) - 1) / 2) * width / max(len(runs), 1)
            ax.errorbar(x, d["escape"], yerr=[d["escape"] - d["escape_low"], d["escape_high"] - d["escape"]],
                        fmt="o", ms=3, lw=0.8, color=pal[i], label=f"run {k}")  # fmt: skip
        r = recipe[recipe["scorer"] == name].sort_values("sparsity")
        x = r["sparsity"] + width * 0.75
        ax.errorbar(x, r["escape"], yerr=[r["escape"] - r["escape_low"], r["escape_high"] - r["escape"]],
                    fmt="s", ms=4, lw=1.6, color="black", label="recipe")  # fmt: skip
        ax.axhline(0, color="0.5", lw=0.6)
        ax.set_xticks(grid)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(classes):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_ylabel("escape (points)", fontsize=8)
    for ax in axes[-1, :]:
        ax.set_xlabel("S", fontsize=8)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig
