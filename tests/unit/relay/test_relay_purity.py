"""The relay core stays pure: stdlib, itself, and nh3 (a pure sanitizing library)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

RELAY = Path(__file__).resolve().parents[3] / "chalicelib" / "relay"
ALLOWED_THIRD_PARTY = {"nh3"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            roots.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module)
    return roots


def test_given_the_relay_core_then_it_imports_only_stdlib_itself_and_nh3() -> None:
    modules = sorted(RELAY.glob("*.py"))
    assert len(modules) > 20
    for path in modules:
        for name in imported_roots(path):
            top = name.split(".")[0]
            ok = top in sys.stdlib_module_names or name.startswith("chalicelib.relay") or top in ALLOWED_THIRD_PARTY
            assert ok, f"{path.name} imports {name}"
