"""What may reach what: adapters and commands use the service's named operations, never its insides."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The service's insides: the store, the store thread, the runtimes, the window planner.
INSIDES = {"store", "db", "runtime", "decider", "responder", "planner"}


def _sources() -> list[Path]:
    return sorted((ROOT / "adapters").rglob("*.py")) + [ROOT / "bot" / "commands.py"]


def _reaches(tree: ast.AST) -> list[str]:
    """``<x>.service.<inside>`` or ``service.<inside>`` / ``svc.<inside>`` attribute chains."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in INSIDES:
            owner = node.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name in {"service", "svc", "_service"}:
                found.append(f"line {node.lineno}: {name}.{node.attr}")
    return found


def test_adapters_and_commands_use_named_operations() -> None:
    reached = {str(p.relative_to(ROOT)): _reaches(ast.parse(p.read_text())) for p in _sources()}
    assert {k: v for k, v in reached.items() if v} == {}


def test_commands_do_not_import_the_service() -> None:
    tree = ast.parse((ROOT / "bot" / "commands.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert "bot.service" not in imported
