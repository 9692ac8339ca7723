"""Every llama.cpp load in the project goes without extra buffer types (AMX crashes) and logs into logging."""

from __future__ import annotations

import ast
import logging
import sys
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

import llama_cpp.llama_cpp as llama_capi  # noqa: E402

from model_runtime import llama_load  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PROJECT_DIRS = ("adapters", "benchmarks", "bot", "chime", "model_runtime", "tests", "training")


def _python_files() -> list[Path]:
    return [p for d in PROJECT_DIRS for p in (ROOT / d).rglob("*.py")]


def _direct_loads(tree: ast.AST) -> list[int]:
    """Lines that construct ``Llama(...)`` or start ``-m llama_cpp.server`` themselves."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "Llama":
                lines.append(node.lineno)
        if isinstance(node, ast.List | ast.Tuple):
            values = [e.value for e in node.elts if isinstance(e, ast.Constant)]
            if any(a == "-m" and b == "llama_cpp.server" for a, b in zip(values, values[1:], strict=False)):
                lines.append(node.lineno)
    return lines


def test_no_load_in_the_project_bypasses_the_safe_loader() -> None:
    offenders = []
    for path in _python_files():
        if path.name == "llama_load.py" and path.parent.name == "model_runtime":
            continue
        for line in _direct_loads(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            offenders.append(f"{path.relative_to(ROOT)}:{line}")
    assert offenders == [], "load through model_runtime.llama_load / model_runtime.llama_server instead"


def test_the_scan_finds_a_direct_load() -> None:
    # The check above must be able to fail: both kinds of bypass are caught.
    code = "import llama_cpp\nllm = llama_cpp.Llama('m.gguf')\ncmd = [sys.executable, '-m', 'llama_cpp.server']\n"
    assert _direct_loads(ast.parse(code)) == [2, 3]


def test_safe_defaults_turn_extra_buffer_types_off() -> None:
    assert llama_load._original_defaults().use_extra_bufts is True  # llama.cpp's own default
    assert llama_load.safe_model_defaults().use_extra_bufts is False
    llama_load.install()
    assert llama_capi.llama_model_default_params().use_extra_bufts is False


def test_the_runtime_loads_without_extra_buffer_types(bundled_path: Path) -> None:
    from model_runtime import LlamaCppOptions, create_runtime

    rt = create_runtime(LlamaCppOptions(n_ctx=512, n_threads=1))
    try:
        assert rt._llm.model_params.use_extra_bufts is False
        assert rt._llm.model_params.use_extra_bufts == llama_capi.llama_model_default_params().use_extra_bufts
    finally:
        rt.close()


def test_the_evaluator_and_vocab_loads_are_safe(bundled_path: Path) -> None:
    llm = llama_load.load_llama(str(bundled_path), vocab_only=True, n_ctx=256)
    try:
        assert llm.model_params.use_extra_bufts is False
    finally:
        llm.close()


def test_the_server_launcher_installs_safe_defaults_before_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    import llama_cpp.server.__main__ as server_main

    from model_runtime import llama_server

    seen: list[bool] = []
    monkeypatch.setattr(llama_capi, "llama_model_default_params", llama_load._original_defaults)
    monkeypatch.setattr(llama_load, "_installed", False)
    monkeypatch.setattr(
        server_main, "main", lambda: seen.append(llama_capi.llama_model_default_params().use_extra_bufts)
    )
    monkeypatch.setattr(sys, "argv", ["llama_server"])
    llama_server.main()
    assert seen == [False]


def test_native_log_lines_go_to_logging_not_stderr(
    bundled_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="chime.llama_cpp")
    llm = llama_load.load_llama(str(bundled_path), n_ctx=256, n_threads=1)
    llm.close()
    _, err = capfd.readouterr()
    assert err == ""
    assert [r for r in caplog.records if r.name == "chime.llama_cpp"], "llama.cpp's load lines reach logging"


def test_native_levels_map_to_logging_levels(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="chime.llama_cpp")
    lines = llama_load._LineLogger()
    lines(3, b"lora for 'blk.0' cannot use buft 'AMX', fallback to CPU\n", None)
    lines(2, b"load_tensors: ", None)
    lines(5, b"CPU model buffer size = 80 MiB\n", None)
    lines(4, b"decode failed\n", None)
    got = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert got == [
        (logging.WARNING, "lora for 'blk.0' cannot use buft 'AMX', fallback to CPU"),
        (logging.DEBUG, "load_tensors: CPU model buffer size = 80 MiB"),
        (logging.ERROR, "decode failed"),
    ]
