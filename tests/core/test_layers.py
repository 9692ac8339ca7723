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


# What the core may never import: platform SDKs, heavy ML libraries, adapters, model backends.
CORE_FORBIDDEN = ("discord", "nio", "torch", "transformers", "llama_cpp", "peft", "adapters", "training")
BACKENDS = ("llama_cpp_backend", "transformers_backend", "openai_compat", "openai_chat", "worker", "prompt_runtime")


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports (at any depth, lazily too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _breaks(module: str, forbidden_roots: tuple[str, ...]) -> bool:
    parts = module.split(".")
    return parts[0] in forbidden_roots or (parts[0] == "model_runtime" and any(p in BACKENDS for p in parts[1:]))


def test_the_core_imports_no_platform_ml_library_or_backend() -> None:
    wrong = {
        str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if _breaks(m, CORE_FORBIDDEN))
        for p in sorted((ROOT / "bot").rglob("*.py"))
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_adapters_import_neither_each_other_nor_a_runtime() -> None:
    wrong = {}
    for p in sorted((ROOT / "adapters").rglob("*.py")):
        own = p.relative_to(ROOT / "adapters").parts[0]
        bad = [m for m in _imports(p) if m.startswith("model_runtime")]
        bad += [m for m in _imports(p) if m.startswith("adapters.") and m.split(".")[1] != own]
        if bad:
            wrong[str(p.relative_to(ROOT))] = sorted(bad)
    assert wrong == {}
