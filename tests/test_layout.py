"""The package's imports follow the pipeline: no cycles, no arrow against the flow of
shared/DESIGN.md. Imports inside functions count; the one allowance is listed by name below."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "symdl"

# Each folder and what it may import (besides itself); the root __init__ re-exports everything.
MAY_IMPORT = {
    "core": set(),
    "ops": {"core"},
    "parsing": {"core", "ops"},
    "compile": {"core", "ops"},
    "render": {"core", "ops"},
    "checking": {"core", "ops", "parsing", "compile", "render"},
    "optim": {"core", "ops", "compile", "render"},
    "nn": {"core", "ops", "compile", "render"},
    "training": {"core", "ops", "compile", "render", "nn", "optim"},
    "prob": {"core", "ops", "compile", "render", "nn"},
    "cli": {"core", "ops", "parsing", "compile", "render", "checking", "nn", "optim", "training"},
}
# Convenience methods of the public API that hand their object to a later stage.
ALLOWED_LATE = {
    ("core/derivation.py", "Derivation.to_latex", "render"),
    ("core/derivation.py", "Derivation.to_markdown", "render"),
    ("core/derivation.py", "Derivation._repr_latex_", "render"),
    ("core/derivation.py", "Derivation.compile", "compile"),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path):
    """(imported symdl module, enclosing function's qualified name or None) for each import."""
    found = []

    def visit(node, scope):
        for child in ast.iter_child_nodes(node):
            inner = scope
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                inner = f"{scope}.{child.name}" if scope else child.name
            if isinstance(child, ast.Import):
                found.extend((a.name, scope) for a in child.names if a.name.startswith("symdl"))
            elif isinstance(child, ast.ImportFrom) and (child.module or "").startswith("symdl"):
                found.extend((f"{child.module}.{a.name}", scope) for a in child.names)
                found.append((child.module, scope))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), None)
    return found


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in MAY_IMPORT) else None


def _edges(include_allowed: bool):
    for module, path in MODULES.items():
        for target, scope in _imports(path):
            target = _resolve(target)
            if target is None or target == module:
                continue
            rel = str(path.relative_to(PACKAGE))
            allowed = (rel, str(scope), _folder(target)) in ALLOWED_LATE
            if include_allowed or not allowed:
                yield module, target, scope


def test_every_folder_is_known():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(MAY_IMPORT), "a new folder needs its place in MAY_IMPORT"


@pytest.mark.parametrize("folder", sorted(MAY_IMPORT))
def test_no_arrow_against_the_flow(folder):
    wrong = []
    for module, target, scope in _edges(include_allowed=False):
        if _folder(module) != folder:
            continue
        where = f" (in {scope})" if scope else ""
        dest = "the package root" if target == "symdl" else _folder(target)
        if dest not in (None, folder) and dest not in MAY_IMPORT[folder]:
            wrong.append(f"{module} -> {target}{where}")
    assert not wrong, f"{folder} may import only {sorted(MAY_IMPORT[folder])}:\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, target, _ in _edges(include_allowed=False):
        # a package's __init__ re-exporting its children is not a cycle of the design
        if not target.startswith(module + "."):
            graph[module].add(target)
    cycles = _strongly_connected(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_allowance_is_used_and_nothing_else_reaches_forward_lazily():
    used = {
        (str(MODULES[m].relative_to(PACKAGE)), str(scope), _folder(t))
        for m, t, scope in _edges(include_allowed=True)
    }
    assert ALLOWED_LATE <= used, "an allowance that is no longer needed: remove it"


def _strongly_connected(graph):
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while (w := stack.pop()) != v:
                on.discard(w)
                group.append(w)
            on.discard(v)
            if group:
                out.append(sorted([v, *group]))

    for v in graph:
        if v not in index:
            visit(v)
    return out
