"""The package's internal imports form no cycle, counting imports inside functions too.

A lazy import inside a function hides a cycle from Python's import machinery but not from the
design: the two modules still depend on each other. This test reads the source with `ast`, so it
fails on such a loop whether or not any import ever runs.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import sics

PACKAGE = Path(next(iter(sics.__path__)))


def module_names(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name (relative to `sics`; a package by its own name) -> its source file."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            out[".".join(parts)] = path
    return out


def _targets(node: ast.AST, module: str = "", is_package: bool = False,
             known: frozenset[str] | set[str] = frozenset()) -> set[str]:  # fmt: skip
    """The `sics` modules one import statement refers to (dotted, relative to `sics`)."""
    here = module.split(".") if module else []
    pkg = here if is_package else here[:-1]
    names: list[list[str]] = []
    if isinstance(node, ast.ImportFrom):
        if node.level:
            anchor = pkg[: len(pkg) - (node.level - 1)] if node.level > 1 else pkg
            base = anchor + (node.module.split(".") if node.module else [])
        elif node.module and node.module.split(".")[0] == "sics":
            base = node.module.split(".")[1:]
        else:
            return set()
        for a in node.names:  # `from . import sub`, or `from pkg import sub` where sub is a module
            sub = base + [a.name]
            names.append(sub if (node.module is None and node.level) or ".".join(sub) in known else base)
    elif isinstance(node, ast.Import):
        names = [a.name.split(".")[1:] for a in node.names if a.name.split(".")[0] == "sics"]
    return {".".join(n) for n in names if n}


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package modules it imports anywhere (module level or inside functions)."""
    modules = module_names(package)
    known = frozenset(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges: set[str] = set()
        for node in ast.walk(tree):
            edges |= _targets(node, name, path.name == "__init__.py", known)
        graph[name] = (edges & known) - {name}
    return graph


def third_party(name: str) -> set[str]:
    """Top-level names of the packages a module imports anywhere (torch, numpy, ...)."""
    tree = ast.parse(module_names()[name].read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out - {"sics", "__future__"}


def closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


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
        "def lazy():\n    from .i import w\nfrom ..j import v\n"
    )
    found = set().union(*(_targets(n, "p.m", known={"e"}) for n in ast.walk(ast.parse(src))))
    assert found == {"p.a", "p.b", "p.c", "d", "e", "f", "g.h", "p.i", "j"}


def test_the_graph_sees_the_package_and_its_layers():
    graph = import_graph()
    assert {"selection.scorers", "selection.complexity", "selection.select", "analysis.claims", "study.sweep"} <= set(graph)
    assert {"selection.complexity", "selection.scorers"} <= graph["study.sweep"]


def test_no_import_cycle_among_sics_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


LAYERS_WITHOUT_TORCH = ("selection", "analysis")
HEAVY = {"torch", "torchvision", "timm", "safetensors"}


def test_the_selection_and_analysis_layers_import_no_torch_anywhere():
    """Statically: neither they nor any sics module they import (in functions too) imports torch."""
    graph = import_graph()
    for name in sorted(graph):
        if name.split(".")[0] in LAYERS_WITHOUT_TORCH:
            reached = {name} | closure(graph, name)
            heavy = {m: third_party(m) & HEAVY for m in reached if third_party(m) & HEAVY}
            assert not heavy, f"{name} reaches {heavy}"


def test_importing_the_analysis_layer_loads_no_torch():
    code = ("import sys, sics.analysis, sics.analysis.claims, sics.analysis.stats, sics.selection.scorers, "
            "sics.selection.select, sics.selection.complexity; assert 'torch' not in sys.modules, 'torch loaded'")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# what regenerating a committed study imports: torch and timm only where a model runs
TORCH_FREE = ("sics.config", "sics.hardware", "sics.provenance", "sics.data", "sics.data.registry", "sics.data.text",
              "sics.models", "sics.training.identity", "sics.training.weights", "sics.units", "sics.study.study",
              "sics.study.stage", "sics.study.sweep", "sics.study.runs", "sics.study.criteria", "sics.report.tables",
              "sics.report.figures", "sics.cli.paper")  # fmt: skip


def test_the_regeneration_path_imports_neither_torch_nor_timm():
    code = (f"import sys; import {', '.join(TORCH_FREE)}; "
            "loaded = [m for m in ('torch', 'timm', 'torchvision') if m in sys.modules]; assert not loaded, loaded")  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_block_statistics_live_in_the_selection_layer_and_units_compute_them():
    """Each unit kind's statistics and surgery live in its own file under sics/units."""
    from sics.selection import complexity, groups, scorers
    from sics.units import conv_channels, mlp_channels

    for name in ("BlockStats", "with_taylor"):
        assert getattr(scorers, name) is getattr(groups, name), name
    for name in ("along_rank", "is_monotone_in_rank"):
        assert getattr(complexity, name) is getattr(groups, name), name
    assert callable(mlp_channels.block_stats) and callable(mlp_channels.taylor_importance)
    assert callable(conv_channels.conv_magnitudes)
    graph = import_graph()
    assert graph["selection.groups"].isdisjoint({"selection.scorers", "selection.complexity"})
    assert "selection.groups" in graph["selection.scorers"] and "selection.groups" in graph["selection.complexity"]


def test_every_unit_kind_owns_its_surgery_and_shares_one_slicing_helper():
    """MLP and conv channels slice through `units.ops.narrowed`; no other module slices layers."""
    graph = import_graph()
    for kind in ("units.mlp_channels", "units.conv_channels", "units.tokens"):
        assert "units.base" in graph[kind], kind
    for name, path in module_names().items():
        if not name.startswith("units."):
            assert "skip_init" not in path.read_text(), f"{name} builds layers: surgery belongs to a unit kind"


def test_the_report_layer_imports_nothing_from_the_study_layer():
    """Tables and figures are drawn from summaries and captions, never from a study's internals
    (the site runs `make paper` through the command layer, lazily, to get executed notebooks)."""
    graph = import_graph()
    for name in sorted(graph):
        if name.startswith("report"):
            assert not {m for m in graph[name] if m.split(".")[0] in ("study", "training", "units")}, name


def test_no_module_class_or_function_of_sics_is_too_long():
    """One job per piece: modules up to 400 lines, classes up to 150, functions up to 60."""
    limits = {ast.ClassDef: 150, ast.FunctionDef: 60, ast.AsyncFunctionDef: 60}
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        src = path.read_text()
        name = path.relative_to(PACKAGE.parent)
        if len(src.splitlines()) > 400:
            too_long.append(f"{name}: {len(src.splitlines())} lines")
        for node in ast.walk(ast.parse(src)):
            limit = limits.get(type(node))
            if limit and node.end_lineno - node.lineno + 1 > limit:
                too_long.append(f"{name}: {node.name}, {node.end_lineno - node.lineno + 1} lines")
    assert not too_long, "over the limits: " + "; ".join(too_long)
