"""The package's internal imports form no cycle, counting imports inside functions too.

A lazy import inside a function hides a cycle from Python's import machinery but not from the
design: the two modules still depend on each other. This test reads the source with `ast`, so it
fails on such a loop whether or not any import ever runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import sics

PACKAGE = Path(next(iter(sics.__path__)))


def _targets(node: ast.AST) -> set[str]:
    """The `sics` modules one import statement refers to."""
    out: set[str] = set()
    if isinstance(node, ast.ImportFrom):
        if node.level == 1:  # from .x import y  /  from . import x
            base = node.module
        elif node.level == 0 and node.module and node.module.split(".")[0] == "sics":
            base = node.module.partition(".")[2] or None  # sics.x -> x; sics -> None
        else:
            return out
        if base:
            out.add(base.split(".")[0])
        else:  # from . import x, y: the names are modules (or package attributes)
            out.update(a.name for a in node.names)
    elif isinstance(node, ast.Import):
        for a in node.names:
            parts = a.name.split(".")
            if parts[0] == "sics" and len(parts) > 1:
                out.add(parts[1])
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere (module level or inside functions)."""
    modules = {p.stem for p in package.glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name in sorted(modules):
        tree = ast.parse((package / f"{name}.py").read_text(), filename=f"{name}.py")
        edges: set[str] = set()
        for node in ast.walk(tree):
            edges |= _targets(node)
        graph[name] = (edges & modules) - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None when the graph is acyclic (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"b"}}) == ["b", "b"]


def test_the_parser_sees_every_import_form():
    src = (
        "from .a import x\nfrom . import b, c\nfrom sics.d import y\nfrom sics import e\n"
        "import sics.f\nimport sics.g.h as gh\nimport numpy\nfrom numpy import z\n"
        "def lazy():\n    from .i import w\n"
    )
    found = set().union(*(_targets(n) for n in ast.walk(ast.parse(src))))
    assert found == {"a", "b", "c", "d", "e", "f", "g", "i"}


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert {"scorers", "complexity", "prune", "sweep"} <= set(graph)
    assert "complexity" in graph["sweep"] and "scorers" in graph["sweep"]


def test_no_import_cycle_among_sics_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_block_statistics_live_in_blocks_and_are_re_exported():
    from sics import blocks, complexity, scorers

    for name in ("BlockStats", "block_stats", "with_taylor", "taylor_importance"):
        assert getattr(scorers, name) is getattr(blocks, name), name
    for name in ("along_rank", "is_monotone_in_rank"):
        assert getattr(complexity, name) is getattr(blocks, name), name
    graph = import_graph()
    assert graph["blocks"].isdisjoint({"scorers", "complexity"})
    assert "blocks" in graph["scorers"] and "blocks" in graph["complexity"]
