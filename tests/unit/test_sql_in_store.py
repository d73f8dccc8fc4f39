"""Every SQL statement is in kiosk/store (the audit chain's appender keeps its own, by design).

Outside those packages a module may hold a connection (``sqlalchemy.ext.asyncio``
types), catch a database error (``sqlalchemy.exc``) or read a URL
(``sqlalchemy.engine.make_url``), but it builds no statement and names no table.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPEAKS_SQL = ("kiosk/store/", "kiosk/audit/")
ALLOWED = {
    "sqlalchemy.ext.asyncio": None,  # connection and engine types
    "sqlalchemy.exc": None,  # errors to catch
    "sqlalchemy.engine": {"make_url", "URL"},
}


def offences(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("sqlalchemy") or alias.name == "kiosk.store.schema":
                    found.append(f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = {a.name for a in node.names}
            if node.module == "kiosk.store.schema" or (
                node.module == "kiosk.store" and "schema" in names
            ):
                found.append(f"from {node.module} import {', '.join(sorted(names))}")
            elif node.module.startswith("sqlalchemy"):
                allowed = ALLOWED.get(node.module, set())
                if allowed is not None and not names <= allowed:
                    found.append(f"from {node.module} import {', '.join(sorted(names))}")
    return found


def test_no_module_outside_the_store_builds_sql() -> None:
    sources = [
        p
        for top in ("kiosk", "provisioning")
        for p in sorted((ROOT / top).rglob("*.py"))
        if not str(p.relative_to(ROOT)).startswith(SPEAKS_SQL)
    ]
    assert sources
    found = {str(p.relative_to(ROOT)): offences(p) for p in sources}
    assert {path: what for path, what in found.items() if what} == {}
