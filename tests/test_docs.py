"""The front page and the docs: short, self-contained, and their recipe runs as written."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import yaml
from selection.test_scorers import synthetic_blocks

from sics.paths import REPO
from sics.selection.scorers import SCORERS, get_scorer, score_blocks
from sics.selection.select import select

README = (REPO / "README.md").read_text()


def test_the_readme_is_a_front_page_and_every_link_in_the_docs_resolves():
    assert len(README.splitlines()) <= 200
    assert "make paper" in README and "make test" in README
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not target.startswith(("http://", "https://")):
                assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


def test_the_readmes_scorer_recipe_runs_as_written():
    block = re.search(r"## Add your own scorer\s+```python\n(.*?)```", README, re.S).group(1)
    assert len(block.strip().splitlines()) <= 12  # "a scorer in ten lines", plus its imports
    try:
        exec(compile(block, "README.md", "exec"), {})
        blocks = synthetic_blocks(512)
        masks = select(score_blocks(blocks, "cosine_smooth", 0.7, seed=3), 0.7)
        assert sum(int(m.sum()) for m in masks) == 3 * 154
        assert get_scorer("cosine_smooth").kappa == "1"
        assert get_scorer("cosine_smooth").params() == {"lam": 0.2, "freq": 1.5}
        plain = select(score_blocks(blocks, "magnitude", 0.7), 0.7)
        assert any(not np.array_equal(a, b) for a, b in zip(masks, plain))  # non-monotone indeed
    finally:
        SCORERS.pop("cosine_smooth", None)


def test_the_extending_guides_recipes_run_as_written():
    """Its scorer registers and selects; its own-ViT profile is a config that builds (the lines
    that train and sweep need data, and run in `tests/study/test_seams.py`'s way)."""
    page = (REPO / "docs" / "extending.md").read_text()
    scorer, study = re.findall(r"```python\n(.*?)```", page, re.S)[:2]
    try:
        exec(compile(scorer, "extending.md", "exec"), {})
        masks = select(score_blocks(synthetic_blocks(512), "cosine_smooth", 0.5, seed=1), 0.5)
        assert sum(int(m.sum()) for m in masks) == 3 * 256 and get_scorer("cosine_smooth").kappa == "1"
    finally:
        SCORERS.pop("cosine_smooth", None)
    head = study[: study.index("study = prepare")]
    scope: dict = {}
    exec(compile(head, "extending.md", "exec"), scope)
    from sics.models import build_model, geometry

    mine = scope["mine"]
    assert geometry(mine) == "12x192, H=768, patch 4" and mine.epochs == 30
    model = build_model(mine)
    assert model.embed_dim == 192 and len(model.blocks) == 12 and model.num_classes == 10


def test_licence_and_citation_name_the_paper_and_this_companion():
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT" and cff["type"] == "software"
    paper = cff["references"][0]
    assert "Selection Plateau" in paper["title"] and "2605.09345" in paper["url"]


def test_no_issue_numbers_and_no_paths_outside_the_repository_in_docs_code_or_comments():
    def tracked(*paths: str) -> list[str]:
        out = subprocess.run(["git", "ls-files", *paths], cwd=REPO, capture_output=True, text=True, check=True)
        return [name for name in out.stdout.split() if name != "tests/test_docs.py"]

    def hits(names: list[str], pattern: str) -> list[str]:
        found = ((name, re.search(pattern, (REPO / name).read_text(errors="ignore"))) for name in names)
        return [f"{name}: {m.group(0)}" for name, m in found if m]

    assert not hits(tracked("README.md", "docs", "sics", "notebooks", "tools", "tests", "Makefile", ".ci"),
                    r"(?i:issue \d+)")  # fmt: skip
    # what a reader of the docs and code sees stands in the repository (CI and this project's own
    # machine scripts may name the data beside the checkout)
    assert not hits(tracked("README.md", "docs", "sics", "notebooks"), r"PROTOCOL\.md|\.\./shared/")
