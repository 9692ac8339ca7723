"""chime eval with the bundled SmolLM2 GGUF on llama.cpp: the replay is the cached case.

One llama.cpp thread: on a 2-core CI machine shared with other tests, a second thread
spin-waiting for a busy core makes each decision several times slower.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from model_runtime import create_runtime
from model_runtime.options import LlamaCppOptions
from tests.eval.conftest import SMALL
from training.eval.evaluate import main, replay

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed"),
]


def test_replay_reuses_the_channel_cache() -> None:
    runtime = create_runtime(LlamaCppOptions(adapter_path=None, n_ctx=1024, max_tokens=24, n_threads=1))
    try:
        rep = replay(runtime, SMALL)
    finally:
        runtime.close()
    assert len(rep.results) == 7
    assert all(0.0 < r.p_speak < 1.0 for r in rep.results)
    assert len({round(r.p_speak, 6) for r in rep.results}) > 1
    # Each window extends the last one, so most of every later prompt comes from the cache.
    assert rep.tokens_cached > rep.tokens_evaluated
    # "@assistant ...", "assistant, ..." and "hey assistant ..." address it: each is asked with force.
    forced = [r.complied for r in rep.results if r.complied is not None]
    assert len(forced) == 3


def test_cli_with_bundled_model_and_prompted_baseline(
    small_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "llama.yaml"
    cfg.write_text(
        "runtime:\n  kind: llama_cpp\n  adapter_path: null\n  n_ctx: 1024\n  max_tokens: 24\n  n_threads: 1\n"
    )
    png = tmp_path / "sweep.png"
    argv = [str(small_data), "--config", str(cfg), "--json", "--baselines", "prompted", "--sweep", str(png)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["runtime"] == "llama_cpp" and report["turns"] == 7 and report["forced_turns"] == 3
    assert report["forced_compliance"] in (0.0, 1.0)
    assert 0.0 <= report["best_threshold"] <= 1.0 and png.stat().st_size > 0
    prompted = report["baselines"]["prompted"]
    assert prompted["runtime"] == "llama_cpp" and prompted["turns"] == 7
    # The prompted baseline renders a system prompt and reminders, so it is a different model input.
    assert prompted["tokens_evaluated_per_decision"] != report["tokens_evaluated_per_decision"]
