"""LlamaCppRuntime with the bundled SmolLM2 GGUF, loaded for real through llama-cpp-python."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import pytest

from model_runtime import LlamaCppOptions, RuntimeError_, Turn, create_runtime
from model_runtime.bundled import file_sha256
from model_runtime.llama_cpp_backend import LlamaCppRuntime

from .conftest import THREADS, long_conversation, sample_windows


def same_decision(a: float, b: float) -> bool:
    """Equal p_speak up to llama.cpp's float reordering, compared as log-odds.

    A state restored from the cache and a cold start evaluate the same tokens in
    different batch splits, and llama.cpp's CPU kernels sum in a different order per
    split size: on one CI machine 2.32e-6 vs 2.26e-6 (0.028 in log-odds). 0.1 log-odds
    is a 2.5% relative change of p_speak, far below what a wrong or missing cached
    token does (a whole message lost moves it by several units).
    """
    return abs(math.log(a / (1 - a)) - math.log(b / (1 - b))) < 0.1


def make_runtime(**kw) -> LlamaCppRuntime:
    opts = {"adapter_path": None, "n_threads": THREADS, "n_ctx": 2048, **kw}
    return create_runtime(LlamaCppOptions(**opts))  # type: ignore[return-value]


@pytest.fixture(scope="module")
def runtime():
    rt = make_runtime()
    yield rt
    rt.close()


def write_lora(path: Path, n_embd: int, n_layer: int = 30, scale: float = 0.0, seed: int = 0) -> Path:
    """A GGUF LoRA adapter on every attn_q of a llama base whose width is ``n_embd``."""
    import gguf

    rng = np.random.default_rng(seed)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 4.0)
    for layer in range(n_layer):
        a = rng.standard_normal((4, n_embd)).astype(np.float32) * 0.1  # numpy (rank, in) = ggml [in, rank]
        b = rng.standard_normal((n_embd, 4)).astype(np.float32) * scale  # numpy (out, rank) = ggml [rank, out]
        writer.add_tensor(f"blk.{layer}.attn_q.weight.lora_a", a)
        writer.add_tensor(f"blk.{layer}.attn_q.weight.lora_b", b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_p_speak_is_a_probability_and_repeatable(runtime: LlamaCppRuntime) -> None:
    window = sample_windows()[2]
    a = runtime.score("repeat", window)
    b = runtime.score("repeat", window)
    assert 0.0 < a.p_speak < 1.0
    assert a.p_speak == b.p_speak
    assert a.timings.tokens_generated == 0  # scoring writes nothing


def test_a_reply_follows_the_score_on_the_cached_state(runtime: LlamaCppRuntime) -> None:
    window = sample_windows()[3]
    scored = runtime.score("thr", window)
    reply = runtime.reply("thr", window)
    assert reply.text and reply.timings.tokens_generated >= 1
    # The prompt the score evaluated is reused: only the prefill and the reply are new.
    assert reply.timings.tokens_cached >= scored.timings.tokens_evaluated - 8


def test_the_cache_evaluates_only_the_new_message_and_changes_nothing(runtime: LlamaCppRuntime) -> None:
    """Each decision on a growing conversation evaluates about the new message, with the p_speak of a cold start."""
    conversation = long_conversation(12)
    fresh = make_runtime()
    try:
        for n in range(6, 10):
            window = conversation[: n + 1]
            warm = runtime.score("grow", window)
            fresh.forget("cold")
            cold = fresh.score("cold", window)
            assert same_decision(warm.p_speak, cold.p_speak)
            if n > 6:
                new_message = runtime.count_tokens(f"{window[-1].name}: {window[-1].content}")
                # Besides the message: "ence)" closing the last "(silence)", the turn markers
                # and "(sil" for the decision, 15 tokens with this template.
                assert warm.timings.tokens_evaluated <= new_message + 16
                assert warm.timings.tokens_cached >= cold.timings.tokens_evaluated - new_message - 16
            assert cold.timings.tokens_cached == 0
    finally:
        fresh.close()


def test_interleaved_channels_restore_their_own_state() -> None:
    rt = make_runtime(cache_budget_mb=64)
    try:
        conv_a, conv_b = long_conversation(10), list(reversed(long_conversation(10)))
        for n in range(5, 8):
            a = rt.score("A", conv_a[: n + 1])
            b = rt.score("B", conv_b[: n + 1])
            if n > 5:
                assert a.timings.tokens_cached > 100 and b.timings.tokens_cached > 100
                assert a.timings.tokens_evaluated < 40 and b.timings.tokens_evaluated < 40
        assert rt.cached_channels == 1  # the live channel is in the context, the other one saved
        solo = make_runtime()
        try:
            assert same_decision(solo.score("A", conv_a).p_speak, a.p_speak)
        finally:
            solo.close()
    finally:
        rt.close()


def test_the_lru_budget_evicts_the_least_recently_used_channel() -> None:
    rt = make_runtime(cache_budget_mb=6)  # a ~140-token state is ~3.3 MB: one fits, two do not
    try:
        conv = long_conversation(4)
        for channel in ("A", "B", "C"):  # switching to C saves B, which evicts A
            rt.score(channel, conv)
        assert rt.cached_channels == 1 and rt._states.evictions == 1
        assert 3 * 2**20 < rt._states.size_bytes <= 6 * 2**20
        assert rt.score("B", conv).timings.tokens_cached > 100  # restored
        assert rt.score("A", conv).timings.tokens_cached == 0  # evicted
    finally:
        rt.close()


def test_forget_drops_the_channel_state(runtime: LlamaCppRuntime) -> None:
    window = long_conversation(5)
    runtime.score("forget-me", window)
    assert runtime.score("forget-me", window).timings.tokens_cached > 0
    runtime.forget("forget-me")
    assert runtime.score("forget-me", window).timings.tokens_cached == 0


def test_forced_reply_is_generated_cut_at_max_tokens_and_clean() -> None:
    rt = make_runtime(max_tokens=6)
    try:
        window = sample_windows()[3]
        d = rt.reply("force", window)
        assert d.text
        assert 1 <= d.timings.tokens_generated <= 6
        assert "(response)" not in d.text and "(silence)" not in d.text
        # The reply's tokens are not reused as they are (one-token batches): the next decision
        # re-evaluates them, so it still equals a cold decision.
        nxt = window + [Turn(role="assistant", content=d.text), Turn(role="user", name="Eve", content="thanks!")]
        warm = rt.score("force", nxt)
        rt.forget("force")
        assert same_decision(rt.score("force", nxt).p_speak, warm.p_speak)
    finally:
        rt.close()


def test_a_window_longer_than_the_context_is_trimmed_not_fatal() -> None:
    rt = make_runtime(n_ctx=512, max_tokens=32)
    try:
        window = long_conversation(80)  # ~2000 tokens
        d = rt.score("long", window)
        assert 0.0 < d.p_speak < 1.0
        assert d.timings.tokens_evaluated <= 512
    finally:
        rt.close()


def test_a_failed_decision_names_the_channel_and_the_next_one_works(runtime: LlamaCppRuntime) -> None:
    bad = [Turn(role="user", name="A", content="hi"), Turn(role="assistant", content="(silence)")]
    with pytest.raises(RuntimeError_, match="'broken-channel'"):
        runtime.score("broken-channel", bad)
    assert 0.0 < runtime.score("other", sample_windows()[0]).p_speak < 1.0


async def test_ascore_runs_off_the_event_loop(runtime: LlamaCppRuntime) -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    runtime.forget("async")
    d = await runtime.ascore("async", long_conversation(20))
    elapsed = time.perf_counter() - start
    task.cancel()
    assert 0.0 < d.p_speak < 1.0
    assert ticks >= min(3, int(elapsed / 0.005) // 4)  # the loop kept running while the model worked


def test_count_tokens_uses_the_model_tokenizer(runtime: LlamaCppRuntime) -> None:
    assert runtime.count_tokens("(silence") == 3
    assert runtime.count_tokens("<|im_end|>") > 1  # typed by a person: plain text, not the special token


def test_missing_model_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError_, match="nowhere.gguf"):
        make_runtime(model_path=tmp_path / "nowhere.gguf")


def test_broken_gguf_is_named(tmp_path: Path, bundled_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(bundled_path.read_bytes()[:1_000_000])  # a valid header, tensors cut off
    with pytest.raises(RuntimeError_, match="broken.gguf"):
        make_runtime(model_path=bad)


def test_missing_adapter_is_named(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError_, match="no-adapter.gguf"):
        make_runtime(adapter_path=tmp_path / "no-adapter.gguf")


def test_adapter_for_another_base_is_named(tmp_path: Path) -> None:
    wrong = write_lora(tmp_path / "wide-adapter.gguf", n_embd=1024, n_layer=2)
    with pytest.raises(RuntimeError_, match="wide-adapter.gguf"):
        make_runtime(adapter_path=wrong)


def test_adapter_whose_meta_names_another_base_is_named(tmp_path: Path) -> None:
    adapter = write_lora(tmp_path / "adapter.gguf", n_embd=576)
    (tmp_path / "meta.json").write_text(json.dumps({"base_model_sha256": "0" * 64, "threshold": 0.3}))
    with pytest.raises(RuntimeError_, match="adapter.gguf"):
        make_runtime(adapter_path=adapter)


def test_a_matching_adapter_loads_and_changes_the_decision(tmp_path: Path, bundled_path: Path) -> None:
    adapter = write_lora(tmp_path / "adapter.gguf", n_embd=576, scale=0.05)
    (tmp_path / "meta.json").write_text(json.dumps({"base_model_sha256": file_sha256(bundled_path), "threshold": 0.3}))
    window = sample_windows()[2]
    with_adapter = make_runtime(adapter_path=adapter)
    base = make_runtime()
    try:
        assert with_adapter.base_threshold == 0.3
        assert "adapter.gguf" in with_adapter.model_id
        a = with_adapter.score("c", window).p_speak
        b = base.score("c", window).p_speak
        assert abs(a - b) > 1e-6
    finally:
        with_adapter.close()
        base.close()


def test_default_adapter_absent_runs_the_base_and_says_so(caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    import model_runtime.bundled as bundled

    monkeypatch.setattr(bundled, "DEFAULT_ADAPTER_DIR", Path("/nonexistent/default_adapter"))
    with caplog.at_level(logging.INFO, logger="model_runtime.bundled"):
        rt = make_runtime(adapter_path="default")
    try:
        assert rt.adapter.path is None and rt.base_threshold == 0.5
        assert "running the base model alone" in caplog.text
    finally:
        rt.close()


def test_default_adapter_present_is_loaded(tmp_path: Path, monkeypatch, bundled_path: Path) -> None:
    import model_runtime.bundled as bundled

    write_lora(tmp_path / "adapter.gguf", n_embd=576)
    (tmp_path / "meta.json").write_text(json.dumps({"base_model_sha256": file_sha256(bundled_path), "threshold": 0.42}))
    monkeypatch.setattr(bundled, "DEFAULT_ADAPTER_DIR", tmp_path)
    rt = make_runtime(adapter_path="default")
    try:
        assert rt.adapter.path == tmp_path / "adapter.gguf" and rt.base_threshold == 0.42
    finally:
        rt.close()


def test_prompted_style_adds_the_baseline_system_prompt() -> None:
    from model_runtime.protocol import BASELINE_REMINDER, BASELINE_SYSTEM_PROMPT

    rt = make_runtime(prompt_style="prompted")
    try:
        window = sample_windows()[2]
        text = rt._builder.build("c", window).text
        assert BASELINE_SYSTEM_PROMPT in text and BASELINE_REMINDER in text
        assert 0.0 < rt.score("c", window).p_speak < 1.0
    finally:
        rt.close()
