"""chime data generate against a real llama.cpp server on 127.0.0.1 serving the bundled model.

The bundled 135M model writes poor conversations; what is tested is that every answer is
either accepted into the file as valid seed format or rejected and counted, never half-kept.
"""

from __future__ import annotations

import importlib.util
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from model_runtime.seed_format import read_seed_file
from training.corpus.cli import main

pytestmark = pytest.mark.slow
SUMMARY = re.compile(r"asked (\d+): accepted (\d+) \((\d+) repaired\), duplicates (\d+), rejected (\d+)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A llama-cpp-python OpenAI-compatible server with the bundled GGUF; stopped after the module."""
    if importlib.util.find_spec("llama_cpp.server") is None:
        pytest.skip("llama-cpp-python[server] is not installed")
    from model_runtime.bundled import bundled_model_path

    port = _free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    cmd = [sys.executable, "-m", "model_runtime.llama_server", "--model", str(bundled_model_path())]
    cmd += ["--model_alias", "smollm2", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"]
    cmd += ["--verbose", "False", "--n_threads", "1"]  # see test_eval_llama: a 2nd thread only spins on CI
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(url + "/models", timeout=2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"llama.cpp server did not start: {log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _generate(capsys: pytest.CaptureFixture[str], url: str, out: Path, count: int, *extra: str) -> tuple[int, ...]:
    argv = ["generate", "--base-url", url, "--model", "smollm2", "--topic", "planning a picnic", "--count", str(count)]
    argv += ["--out", str(out), "--temperature", "0", "--max-tokens", "200", "--timeout", "240", *extra]
    assert main(argv) == 0
    m = SUMMARY.search(capsys.readouterr().out)
    assert m, "no summary line"
    asked, accepted, repaired, duplicates, rejected = map(int, m.groups())
    assert asked == count and accepted + duplicates + rejected == count and repaired <= accepted
    kept = read_seed_file(out) if out.exists() else None
    # Only accepted conversations reach the file, and each is valid seed format (read_seed_file is strict).
    assert (len(kept.conversations) if kept else 0) == accepted
    return asked, accepted, duplicates, rejected


def test_free_form_answers_are_validated(server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _generate(capsys, server_url, tmp_path / "free.jsonl", 2, "-v")


def test_schema_constrained_answers(server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "structured.jsonl"
    # Grammar-constrained sampling is slow in llama-cpp-python: one request is enough here.
    _generate(capsys, server_url, out, 1, "--structured", "json_object", "--min-messages", "2")
    if out.exists():
        for conv in read_seed_file(out).conversations:
            assert all(m["name"] not in ("Noor", "Teo") for m in conv if m["role"] == "user")


def test_unreachable_endpoint_stops_with_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    argv = ["generate", "--base-url", url, "--model", "m", "--topic", "x", "--count", "3", "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "asked 1: accepted 0" in captured.out
    assert "cannot reach the endpoint" in captured.err
    assert not (tmp_path / "o").read_text()
