"""`make site`: a static HTML report of the committed runs, browsable offline.

    python -m sics.report.site [--profile reference] [--out site]

An index page (what the project is, the verdict matrix of every committed study, every figure)
and one page per executed notebook of the profile's `make paper` run, with its tables and figures
inline. The notebooks are converted with nbconvert's `basic` template and wrapped in a page of
our own, so nothing is fetched at view time (the `lab` template loads require.js and MathJax
from a CDN). Executed notebooks are `make paper`'s (figures/<profile>/notebooks/); where they are
missing, this runs `make paper` for the profile first (about two minutes from committed results).
"""

from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
from pathlib import Path

import pandas as pd

from ..analysis.claims import ALL_CLAIMS
from ..errors import SicsError
from ..files import write_text
from ..paths import REPO, SMOKE_PROFILES, figures_root

CLAIMS = tuple(ALL_CLAIMS)  # C7: where the criteria study (09) ran
STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
img { max-width: 100%; height: auto; }
pre { background: #f7f7f7; padding: .6em; overflow-x: auto; font-size: 12px; }
.verdict-supported { background: #dff0d8; } .verdict-not-supported { background: #f8d7da; }
.verdict-inconclusive { background: #fcf3cf; }
.verdict-smaller-than-the-paper, .verdict-not-the-paper-s-size { background: #fde2c8; }
nav a { margin-right: 1em; } figure { margin: 1.5em 0; } figcaption { color: #555; font-size: 13px; }
.jp-InputPrompt, .jp-OutputPrompt { display: none; }
"""


def committed_studies(root: Path | None = None) -> list[Path]:
    """The output folders that hold a committed study: a claims ledger and a results bundle, of a
    profile other than the smoke-scale ones (whose outputs are never committed)."""
    root = root or figures_root()
    return sorted(p for p in root.iterdir() if (p / "claims.csv").exists() and (p / "results.zip").exists()
                  and p.name.split("-")[0] not in SMOKE_PROFILES)  # fmt: skip


def study_label(folder: Path) -> str:
    """E.g. 'reference · mlp_channels': the profile folder and the unit its rows pruned."""
    rows = pd.read_csv(folder / "sweep.csv", usecols=lambda c: c == "unit")  # (no column: MLP channels)
    unit = str(rows["unit"].dropna().iloc[0]) if "unit" in rows and rows["unit"].notna().any() else "mlp_channels"
    return f"{folder.name} · {unit.split('-')[0]}"


ROBUST_MARK = "†"  # the 20% trimmed mean over seeds would read another verdict


def verdict_matrix(folders: list[Path] | None = None) -> pd.DataFrame:
    """Claims (rows) by committed study (columns): each study's verdict, read from its ledger
    (marked † where the trimmed-mean check reads another), and beside a study with training runs
    the recipe-level verdict with the runs whose own ledger agrees, "verdict (k/K)" (marked † as the
    single-network verdicts are, by its two-stage trimmed-mean check)."""
    folders = committed_studies() if folders is None else folders
    cols = {}
    for folder in folders:
        ledger = pd.read_csv(folder / "claims.csv", keep_default_na=False).set_index("claim")
        cols[study_label(folder)] = pd.Series(_marked(ledger), index=ledger.index).reindex(list(CLAIMS)).fillna("–")  # –: not studied there
        recipe = folder / "runs" / "claims.csv"
        if recipe.exists():
            led = pd.read_csv(recipe, keep_default_na=False).set_index("claim")
            label = f"{study_label(folder)} · recipe, {int(led['runs'].iloc[0])} runs"
            need = led["runs_needed"] if "runs_needed" in led else pd.Series("", index=led.index)
            cells = [f"{m} ({h})" + (f"; K≈{int(float(n))} would decide" if v == "inconclusive" and str(n) not in ("", "nan") else "")
                     for m, v, h, n in zip(_marked(led), led["verdict"], led["holds_in"], need)]  # fmt: skip
            cols[label] = pd.Series(cells, index=led.index).reindex(list(CLAIMS)).fillna("–")
    matrix = pd.DataFrame(cols)
    matrix.index.name = "claim"
    return matrix


def _marked(ledger: pd.DataFrame) -> list[str]:
    """A ledger's verdicts, each marked † where its `robust` column reads another verdict."""
    robust = ledger["robust"] if "robust" in ledger else pd.Series("", index=ledger.index)
    return [f"{v} {ROBUST_MARK}" if r not in ("", v) else v for v, r in zip(ledger["verdict"], robust)]


def matrix_markdown(matrix: pd.DataFrame) -> str:
    """The matrix as a Markdown table, as README.md shows it."""
    head = "| claim | " + " | ".join(matrix.columns) + " |"
    rule = "|---" * (len(matrix.columns) + 1) + "|"
    body = [f"| {c} | " + " | ".join(str(v) for v in row) + " |" for c, row in matrix.iterrows()]
    return "\n".join([head, rule, *body])


def _matrix_html(matrix: pd.DataFrame, statements: dict[str, str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in matrix.columns)
    rows = []
    for claim, row in matrix.iterrows():
        cells = "".join(f'<td class="verdict-{re.sub("[^a-z]+", "-", str(v).lower())}">{html.escape(str(v))}</td>'
                        for v in row)  # fmt: skip
        rows.append(f"<tr><th>{claim}</th><td>{html.escape(statements.get(claim, ''))}</td>{cells}</tr>")
    return f"<table><tr><th>claim</th><th>the paper states</th>{head}</tr>{''.join(rows)}</table>"


def _page(title: str, body: str, nav: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><nav>{nav}</nav>\n{body}\n</body></html>\n")  # fmt: skip


def notebook_html(path: Path) -> str:
    """The body of an executed notebook as HTML (images inline, no scripts from elsewhere)."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic", exclude_input_prompt=True, exclude_output_prompt=True,
                            exclude_anchor_links=True)
    body, _ = exporter.from_notebook_node(nbformat.read(path, as_version=4))
    return body


def build(out: Path, notebooks: Path, folders: list[Path] | None = None) -> Path:
    """Write the site into `out` (replaced whole): index.html, one page per notebook in
    `notebooks`, and the committed figures they show. Returns the index's path."""
    folders = committed_studies() if folders is None else folders
    pages = sorted(notebooks.glob("*.ipynb"))
    if not pages:
        raise SicsError(f"no executed notebooks in {notebooks}: run `make paper` first")
    if out.exists():
        shutil.rmtree(out)
    (out / "notebooks").mkdir(parents=True)
    nav = '<a href="{up}index.html">index</a>' + "".join(
        f'<a href="{{up}}notebooks/{p.stem}.html">{p.stem}</a>' for p in pages)  # fmt: skip
    for p in pages:
        write_text(out / "notebooks" / f"{p.stem}.html", _page(p.stem, notebook_html(p), nav.format(up="../")))

    matrix = verdict_matrix(folders)
    statements = {}
    if folders:
        ledger = pd.read_csv(folders[0] / "claims.csv").set_index("claim")
        statements = {c: f"{ledger.loc[c, 'statement']} (paper: {ledger.loc[c, 'paper']})" for c in ledger.index}
    figures = []
    for folder in folders:
        for png in sorted(folder.glob("*.png")):
            target = out / "figures" / folder.name / png.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, target)
            figures.append(f'<figure><img src="figures/{folder.name}/{png.name}" alt="{png.stem}">'
                           f"<figcaption>{folder.name}/{png.name}</figcaption></figure>")  # fmt: skip
    links = "".join(f'<li><a href="notebooks/{p.stem}.html">{p.stem}</a></li>' for p in pages)
    body = f"""<h1>sics: Selection Plateau and a Sparsity-Dependent Hierarchy of Pruning Features</h1>
<p>A reproducible companion to <a href="https://arxiv.org/abs/2605.09345">arXiv 2605.09345</a>. Only the
paper's abstract is public, so the experiment here is a <b>reconstruction</b>; the models are small
from-scratch networks trained on a CPU, not the paper's ViT-Small. Every verdict below is judged by a
rule written before its numbers were seen (docs/statistics.md).</p>
<h2>Verdicts: claims by committed study</h2>
{_matrix_html(matrix, statements)}
<h2>Notebooks (executed)</h2><ul>{links}</ul>
<h2>Figures</h2>
{''.join(figures)}"""
    return write_text(out / "index.html", _page("sics report", body, nav.format(up="")))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default=os.environ.get("SICS_PROFILE", "reference"))
    ap.add_argument("--out", default=str(REPO / "site"))
    args = ap.parse_args(argv)
    try:
        from ..cli.paper import NOTEBOOKS
        from ..config import resolve_profile

        profile = resolve_profile(args.profile).name
        notebooks = figures_root() / profile / "notebooks"
        if not all((notebooks / f"{n}.ipynb").exists() for n in NOTEBOOKS):
            from ..cli import paper

            print(f"[sics] site: executed notebooks of {profile} missing; running make paper first", flush=True)
            if paper.main(["--profile", profile]) != 0:
                return 1
        index = build(Path(args.out), notebooks)
    except SicsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    n = len(list((index.parent / "notebooks").glob("*.html")))
    print(f"[sics] site: {index} and {n} notebook pages (open the index in a browser)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
