"""`make site`: the report builds offline from the committed runs; in a real headless Chromium its
index and a notebook page load every image and log no console error."""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import matplotlib
import nbformat
import pytest

from sics.paths import REPO
from sics.report.site import build, committed_studies, matrix_markdown, verdict_matrix

matplotlib.use("Agg")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def executed_notebook(folder: Path) -> Path:
    """An executed notebook as make paper leaves one: a table and a figure among its outputs."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1], [1, 0])
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("plot()")
    cell.outputs = [nbformat.v4.new_output("display_data", data={
        "image/png": base64.b64encode(buf.getvalue()).decode(), "text/plain": "<Figure>"}),
        nbformat.v4.new_output("execute_result", data={"text/html": "<table><tr><td>1</td></tr></table>",
                                                       "text/plain": "1"}, execution_count=1)]  # fmt: skip
    nb.cells = [nbformat.v4.new_markdown_cell("# 03 kappa spectrum"), cell]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "03_kappa_spectrum.ipynb"
    nbformat.write(nb, path)
    return path


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("site")
    executed_notebook(base / "notebooks")
    return build(base / "site", base / "notebooks", committed_studies(REPO / "figures"))


def test_the_site_holds_the_verdict_matrix_every_figure_and_no_remote_resource(site):
    text = site.read_text()
    matrix = verdict_matrix(committed_studies(REPO / "figures"))
    assert list(matrix.index) == ["C1", "C2", "C3", "C4", "C5", "C6", "C7"] and matrix.shape[1] >= 3
    assert matrix.loc["C7", "reference-tokens · tokens"] == "–"  # no criteria study of tokens
    for study in matrix.columns:
        assert study in text
    pngs = sorted(p for f in committed_studies(REPO / "figures") for p in f.glob("*.png"))
    assert pngs and all((site.parent / "figures" / p.parent.name / p.name).exists() for p in pngs)
    page = (site.parent / "notebooks" / "03_kappa_spectrum.html").read_text()
    assert "data:image/png;base64," in page
    for html in (text, page):  # nothing loads from elsewhere: offline, no console errors
        assert "<script src=" not in html and 'src="http' not in html and "<link" not in html


def test_the_readme_shows_the_committed_verdict_matrix():
    """README.md's verdict matrix is the one the committed ledgers give (no hand-kept copy drifts)."""
    matrix = verdict_matrix(committed_studies(REPO / "figures"))
    assert matrix_markdown(matrix) in (REPO / "README.md").read_text()


@pytest.mark.skipif(not CHROMIUM, reason="no Chromium installed (Debian: apt-get install chromium)")
def test_the_site_loads_in_a_real_browser_with_every_image_and_no_console_error(site):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the dev extra) is not installed")
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=flags)
        try:
            for page_path in (site, site.parent / "notebooks" / "03_kappa_spectrum.html"):
                page = browser.new_page()
                errors: list[str] = []
                page.on("console", lambda m, errors=errors: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
                page.goto(page_path.as_uri(), wait_until="load")
                widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")
                assert widths and min(widths) > 0, (page_path.name, widths)
                assert not errors, (page_path.name, errors)
                page.close()
        finally:
            browser.close()


def test_the_matrix_marks_a_verdict_the_trimmed_mean_would_change_in_both_ledgers(tmp_path):
    """† beside a single-network and a recipe-level verdict whose `robust` reads another verdict;
    an inconclusive recipe verdict keeps its "K≈N would decide", marked or not."""
    study = tmp_path / "reference"
    (study / "runs").mkdir(parents=True)
    (study / "results.zip").write_bytes(b"")
    (study / "sweep.csv").write_text("scorer,unit\nmagnitude,mlp_channels\n")
    (study / "claims.csv").write_text("claim,verdict,robust\nC2,not supported,inconclusive\nC3,supported,supported\n")
    (study / "runs" / "claims.csv").write_text(
        "claim,verdict,robust,runs,holds_in,runs_needed\nC2,inconclusive,not supported,3,2/3,12\n"
        "C3,not the paper's size,not the paper's size,3,3/3,\n")
    matrix = verdict_matrix(committed_studies(tmp_path))
    assert matrix.loc["C2", "reference · mlp_channels"] == "not supported †"
    assert matrix.loc["C3", "reference · mlp_channels"] == "supported"
    recipe = "reference · mlp_channels · recipe, 3 runs"
    assert matrix.loc["C2", recipe] == "inconclusive † (2/3); K≈12 would decide"
    assert matrix.loc["C3", recipe] == "not the paper's size (3/3)"
    assert matrix.loc["C7", recipe] == "–"
