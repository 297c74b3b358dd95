"""The notebooks stay thin: a parameters cell of plain literals, then calls into `sics`. What two
notebooks would repeat is one call in the package (`duplicates` does not read notebooks)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from sics.cli.paper import NOTEBOOKS, notebook_parameters
from sics.paths import notebooks_dir

SHARED_LINES = 4  # a block of this many identical code lines in two notebooks is a copy


def code_lines(path: Path) -> list[list[str]]:
    """Each code cell but the parameters cell, as its stripped lines without blanks and comments."""
    out = []
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code" and "parameters" not in cell.get("metadata", {}).get("tags", []):
            lines = (line.strip() for line in "".join(cell["source"]).splitlines())
            out.append([line for line in lines if line and not line.startswith("#")])
    return out


def shared_blocks(paths: list[Path], width: int = SHARED_LINES) -> dict[tuple[str, ...], set[str]]:
    """Every block of `width` consecutive code lines that more than one notebook holds."""
    seen: dict[tuple[str, ...], set[str]] = {}
    for path in paths:
        for lines in code_lines(path):
            for i in range(len(lines) - width + 1):
                seen.setdefault(tuple(lines[i : i + width]), set()).add(path.stem)
    return {block: who for block, who in seen.items() if len(who) > 1}


def test_no_two_notebooks_share_a_block_of_code():
    paths = [notebooks_dir() / f"{name}.ipynb" for name in NOTEBOOKS]
    found = shared_blocks(paths)
    assert not found, "\n".join(f"{sorted(who)}: {' / '.join(block)}" for block, who in found.items())


def test_the_copy_check_finds_a_copied_cell(tmp_path):
    cell = {"cell_type": "code", "metadata": {}, "source": "a = 1\nb = 2\n# why\nc = 3\nd = a + b + c\n"}
    for name in ("01_x", "02_y"):
        (tmp_path / f"{name}.ipynb").write_text(json.dumps({"cells": [cell]}))
    assert shared_blocks(sorted(tmp_path.glob("*.ipynb"))) == {("a = 1", "b = 2", "c = 3", "d = a + b + c"): {"01_x", "02_y"}}


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_every_parameters_cell_is_plain_literals(name):
    """`NAME = literal` lines only (what papermill injects over and `make paper` checks a SET against)."""
    path = notebooks_dir() / f"{name}.ipynb"
    cell = next(c for c in json.loads(path.read_text())["cells"] if "parameters" in c["metadata"].get("tags", []))
    for node in ast.parse("".join(cell["source"])).body:
        assert isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name), ast.unparse(node)
        ast.literal_eval(node.value)
    assert {"profile", "data"} <= set(notebook_parameters(path))
