"""OpenAICompatRuntime against a real llama-cpp-python server started on 127.0.0.1 with the bundled model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from model_runtime import LlamaCppOptions, OpenAICompatOptions, RuntimeError_, Turn, create_runtime
from model_runtime.openai_compat import OpenAICompatRuntime

from .conftest import THREADS, sample_windows

# The server runs the same llama.cpp on the same GGUF, but reads the distribution after
# "(sil" from a one-token step of its own generation (or a cached prompt), which llama.cpp
# computes with other kernels than a longer batch. Measured on the twelve sample windows
# with one request per position: 11 identical to 5 digits, one 0.065 apart in log-odds.
# Three times that:
LOG_ODDS_TOLERANCE = 0.2


def log_odds(p: float) -> float:
    return math.log(p / (1 - p))


@pytest.fixture(scope="module")
def remote(llama_server: str):
    # The bare base model ranks "response" as low as ~800th after "(": ask for enough.
    rt = create_runtime(
        OpenAICompatOptions(base_url=llama_server + "/v1", model="smollm2", top_logprobs=1000, max_tokens=24)
    )
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def local():
    rt = create_runtime(LlamaCppOptions(adapter_path=None, n_threads=THREADS, max_tokens=24))
    yield rt
    rt.close()


def test_server_matches_local_llama_cpp(remote: OpenAICompatRuntime, local) -> None:
    gaps, requests = [], []
    for i, window in enumerate(sample_windows()):
        before = remote.requests
        a = remote.score(f"w{i}", window)
        b = local.score(f"w{i}", window)
        gaps.append(abs(log_odds(a.p_speak) - log_odds(b.p_speak)))
        requests.append(remote.requests - before)
    assert max(gaps) <= LOG_ODDS_TOLERANCE, gaps
    # One request when the model goes on "(sil" by itself, a second one ("(sil") otherwise:
    # the bare base model does each on some of these windows, so both paths are checked.
    assert set(requests) == {1, 2}, requests


def test_the_reply_comes_from_the_server_in_one_request(remote: OpenAICompatRuntime) -> None:
    window = [Turn(role="user", name="Eve", content="assistant, say hello to everyone please.")]
    before = remote.requests
    d = remote.reply("c", window)
    assert remote.requests - before == 1  # the reply alone: no scoring
    assert d.text
    assert 1 <= d.timings.tokens_generated <= 26  # max_tokens 24, re-tokenised locally
    assert "(response)" not in d.text and "(silence)" not in d.text


def test_a_server_that_does_not_answer_fails_the_call_not_the_runtime(remote: OpenAICompatRuntime) -> None:
    from .conftest import _free_port

    dead = create_runtime(OpenAICompatOptions(base_url=f"http://127.0.0.1:{_free_port()}", model="x", timeout_s=2))
    try:
        with pytest.raises(RuntimeError_, match="'lost-channel'"):
            dead.score("lost-channel", sample_windows()[0])
    finally:
        dead.close()
    assert 0.0 < remote.score("still-fine", sample_windows()[0]).p_speak < 1.0


def test_unknown_model_error_names_the_server(llama_server: str) -> None:
    rt = create_runtime(OpenAICompatOptions(base_url=llama_server + "/nope", model="x", timeout_s=10))
    try:
        with pytest.raises(RuntimeError_, match="404"):
            rt.score("c", sample_windows()[0])
    finally:
        rt.close()


def test_missing_api_key_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CHIME_TEST_NO_SUCH_KEY", raising=False)
    with pytest.raises(RuntimeError_, match="CHIME_TEST_NO_SUCH_KEY"):
        create_runtime(
            OpenAICompatOptions(base_url="http://127.0.0.1:9", model="x", api_key_env="CHIME_TEST_NO_SUCH_KEY")
        )


def test_missing_template_source_is_named(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError_, match="nothing-here.gguf"):
        create_runtime(
            OpenAICompatOptions(base_url="http://127.0.0.1:9", model="x", template_from=tmp_path / "nothing-here.gguf")
        )


def test_count_tokens_uses_the_model_tokenizer(remote: OpenAICompatRuntime, local) -> None:
    text = "Who wrote The Da Vinci Code? <|im_end|>"
    assert remote.count_tokens(text) == local.count_tokens(text)
