"""No import cycles in kiosk/ (ARCHITECTURE.md, Layout; issue 11).

A cycle between modules means neither can be understood, tested or loaded
without the other; an import only for type checking, or one inside a
function, is a cycle all the same (it only hides it from the loader). The
purity of the pure packages and the tablet's separation from the server are
import-linter contracts in pyproject.toml, run by ``make lint``.
"""

from __future__ import annotations

import sys

import grimp

# Cycles other work removes; none may be added, and each goes from here when it is gone.
BEING_REMOVED = {
    frozenset({"kiosk.signalling.mail.notices", "kiosk.signalling.web.confirm"}),
}


def cycles(package: str) -> list[frozenset[str]]:
    """Strongly connected sets of modules (Tarjan) of more than one module."""
    graph = grimp.build_graph(package)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            part = set()
            while True:
                top = stack.pop()
                on_stack.discard(top)
                part.add(top)
                if top == module:
                    break
            if len(part) > 1:
                found.append(frozenset(part))

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for module in sorted(graph.modules):
            if module not in index:
                visit(module)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_kiosk_has_no_import_cycles() -> None:
    new = [sorted(c) for c in cycles("kiosk") if c not in BEING_REMOVED]
    assert new == [], f"import cycles: {new}"


def test_the_cycle_finder_finds_a_cycle(tmp_path: object) -> None:
    import importlib
    import pathlib

    root = pathlib.Path(str(tmp_path))
    (root / "loop").mkdir()
    (root / "loop" / "__init__.py").write_text("")
    (root / "loop" / "a.py").write_text("from loop import b\n")
    (root / "loop" / "b.py").write_text("from loop import a\n")
    sys.path.insert(0, str(root))
    try:
        importlib.invalidate_caches()
        assert cycles("loop") == [frozenset({"loop.a", "loop.b"})]
    finally:
        sys.path.remove(str(root))
