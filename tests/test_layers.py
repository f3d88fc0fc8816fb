"""The layer rules of the design, checked by reading every module's imports (function-level
imports included): which layer may import which, and no import cycles anywhere."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("compute", "store", "dashboard", "vocabulary")
HEAVY = ("torch", "transformers")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            out[_module_name(path)] = path
    # dashboard pages are scripts run by Streamlit, named by their path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Every module `name` imports, resolved: `from a.b import c` is a.b.c when that is a module."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in MODULES else base)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _violations(importer: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()) -> list[str]:
    return sorted(f"{m} imports {d}" for m, deps in GRAPH.items() if _within(m, importer) for d in deps
                  if any(_within(d, f) for f in forbidden) and not any(_within(d, a) for a in allowed))


def test_the_graph_was_read():
    assert "compute.answering.engine" in GRAPH and "compute.model.session" in GRAPH["compute.answering.engine"]
    assert "torch" in GRAPH["compute.model.session"]


def test_compute_never_imports_the_dashboard():
    assert _violations("compute", ("dashboard",)) == []


def test_store_imports_neither_compute_nor_torch():
    assert _violations("store", ("compute", "dashboard", *HEAVY)) == []


def test_metrics_import_neither_the_store_nor_torch():
    assert _violations("compute.metrics", ("store", "dashboard", *HEAVY)) == []


def test_reports_are_pure():
    assert _violations("compute.reports", ("store", "dashboard", *HEAVY)) == []


def test_vocabulary_imports_nothing_of_the_project():
    assert _violations("vocabulary", PACKAGES[:3] + HEAVY) == []


def test_dashboard_reaches_compute_only_through_its_facade():
    assert _violations("dashboard", ("compute", *HEAVY), allowed=("compute.facade",)) == []


@pytest.mark.parametrize("module", ["compute", "compute.facade", "compute.config", "compute.data", "compute.metrics",
                                    "compute.reports", "compute.variants", "compute.studies.import_results",
                                    "compute.data.datasets", "compute.cli", "store", "vocabulary"])
def test_importing_does_not_load_torch(module):
    code = f"import sys, {module}; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT).returncode == 0, f"import {module} loads torch"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan), or a node importing itself."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_between_modules():
    graph = {m: {d for d in deps if d in GRAPH and d != m} for m, deps in GRAPH.items()}
    for m, deps in graph.items():  # a package's own __init__ importing its submodules is not a cycle back
        graph[m] = {d for d in deps if not (_within(m, d) and MODULES[d].name == "__init__.py")}
    assert _cycles(graph) == []


def _package(module: str) -> str:
    """The stage a module belongs to: compute.<stage>, or the top-level package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "compute" and len(parts) > 2 else parts[0] if parts[0] != "compute" \
        else module


def test_no_import_cycles_between_stages():
    graph: dict[str, set[str]] = {}
    for m, deps in GRAPH.items():
        graph.setdefault(_package(m), set()).update(_package(d) for d in deps if d in GRAPH and _package(d) != _package(m))
    assert _cycles(graph) == []


def test_a_cycle_is_found():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
