"""ProcessRuntime: the model in a worker process that may crash, with the bundled GGUF and crashing fakes."""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.domain import ChannelRef, IncomingMessage
from bot.service import UNAVAILABLE_FALLBACK, ConversationService, DecisionEvent
from bot.store import Store, sqlite_url
from bot.store.migrate import upgrade
from chime.app import build_runtime
from model_runtime import LlamaCppOptions, RuntimeError_, Turn, create_runtime
from model_runtime.worker import ProcessRuntime, WorkerSpec, WorkerUnavailable, create_isolated_runtime
from tests.fakes import RecordingSender

from .conftest import THREADS, long_conversation, sample_windows

OPTIONS = LlamaCppOptions(adapter_path=None, n_threads=THREADS, n_ctx=2048, max_tokens=24)
FAST = {"backoff_s": 0.05, "max_backoff_s": 0.2}


def fake(how: str, once: Path | None = None, **kw: float) -> ProcessRuntime:
    spec = WorkerSpec("tests.runtime.worker_fakes:crashing", (how, str(once) if once else None))
    return ProcessRuntime(spec, **{**FAST, **kw})


@pytest.fixture(autouse=True, scope="module")
def no_core_files() -> Iterator[None]:
    """Workers crashed on purpose inherit this: no core file per crash."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))
    yield
    resource.setrlimit(resource.RLIMIT_CORE, (soft, hard))


@pytest.fixture(scope="module")
def isolated() -> Iterator[ProcessRuntime]:
    rt = create_isolated_runtime(OPTIONS)
    yield rt
    rt.close()


@pytest.fixture(scope="module")
def in_process():
    rt = create_runtime(OPTIONS)
    yield rt
    rt.close()


def test_scores_and_replies_equal_the_in_process_ones(isolated: ProcessRuntime, in_process) -> None:
    assert isolated.name == "llama_cpp" and isolated.model_id == in_process.model_id
    assert isolated.base_threshold == in_process.base_threshold
    for i, window in enumerate(sample_windows()):
        a = isolated.score(f"eq{i}", window)
        b = in_process.score(f"eq{i}", window)
        assert a.p_speak == b.p_speak
    window = sample_windows()[3]
    a, b = isolated.reply("eq-reply", window), in_process.reply("eq-reply", window)
    assert a.text and a.text == b.text


def test_count_tokens_is_the_model_tokenizer_without_the_worker(isolated: ProcessRuntime, in_process) -> None:
    for text in ["Alice: hello there", "Bob: 12 × 12 = 144 ✓", "<|im_start|>user", ""]:
        assert isolated.count_tokens(text) == in_process.count_tokens(text)


def test_the_channel_cache_lives_in_the_worker_between_calls(isolated: ProcessRuntime) -> None:
    conv = long_conversation(8)
    first = isolated.score("cache", conv[:-1])
    second = isolated.score("cache", conv)
    assert first.timings.tokens_cached == 0
    assert second.timings.tokens_cached > first.timings.tokens_evaluated - 40
    isolated.forget("cache")  # queued, sent before the next call
    assert isolated.score("cache", conv).timings.tokens_cached == 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV], ids=["SIGKILL", "SIGSEGV"])
def test_a_worker_killed_mid_decision_is_restarted_and_the_decision_retried(
    sig: signal.Signals, in_process, caplog: pytest.LogCaptureFixture
) -> None:
    rt = create_isolated_runtime(OPTIONS)
    try:
        window = long_conversation(6)  # cold: seconds of evaluation on one thread
        rt.score("warm", window[:3])
        victim = rt.pid
        assert victim is not None
        killer = threading.Timer(0.3, os.kill, (victim, sig))
        killer.start()
        with caplog.at_level(logging.ERROR, logger="model_runtime.worker"):
            started = time.monotonic()
            got = rt.score("busy", window)
        killer.join()
        assert time.monotonic() - started > 0.3  # the kill came while it was deciding
        assert rt.deaths == 1 and rt.starts == 2 and rt.pid not in (None, victim)
        assert got.p_speak == in_process.score("busy-ref", window).p_speak
        assert got.timings.tokens_cached == 0  # the new worker started cold
        deaths = [r.getMessage() for r in caplog.records if "died" in r.getMessage()]
        assert len(deaths) == 1 and sig.name in deaths[0] and "retrying the call" in deaths[0]
        assert rt.score("busy", window).timings.tokens_cached > 0  # caching again
    finally:
        rt.close()


def test_an_abort_in_the_backend_is_survived_and_its_output_goes_to_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    rt = fake("abort", once=tmp_path / "crashed")
    try:
        first = rt.pid
        with caplog.at_level(logging.INFO, logger="model_runtime.worker"):
            got = rt.reply("c", [Turn("user", "hi", "Ann")])
        assert got.text == f"answer 1 from pid {rt.pid}" and rt.pid != first
        assert rt.deaths == 1
        assert "SIGABRT" in caplog.text and "fake backend: crashing with abort" in caplog.text
        assert "crashing" not in capfd.readouterr().err  # nothing reached the terminal
    finally:
        rt.close()


def test_a_backend_error_is_raised_as_is_and_the_worker_stays_up(tmp_path: Path) -> None:
    (tmp_path / "crashed").touch()  # never crash
    rt = fake("abort", once=tmp_path / "crashed")
    try:
        with pytest.raises(RuntimeError_, match="no decision in channel 'c'"):
            rt.score("c", [Turn("user", "raise", "Ann")])
        assert rt.score("c", [Turn("user", "hi", "Ann")]).timings.tokens_cached == 2
        os.kill(rt.pid, signal.SIGTERM)  # a service manager's stop is the parent's to handle
        assert rt.score("c", [Turn("user", "hi", "Ann")]).timings.tokens_cached == 3
        assert rt.deaths == 0 and rt.starts == 1
    finally:
        rt.close()


@pytest.mark.parametrize("how", ["segv", "kill", "exit"])
def test_a_worker_dying_on_every_call_gives_up_after_one_retry(how: str) -> None:
    rt = fake(how)
    try:
        with pytest.raises(WorkerUnavailable, match=r"score failed: model worker \(pid \d+\) died"):
            rt.score("c", [Turn("user", "hi", "Ann")])
        assert rt.deaths == 2
        with pytest.raises(WorkerUnavailable, match=r"reply failed: model worker \(pid \d+\) died"):
            rt.reply("c", [Turn("user", "@assistant hi", "Ann")])
        assert rt.deaths == 4
    finally:
        rt.close()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too: it only waits to be reaped by its parent.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"))


def test_a_hung_worker_is_killed_after_the_timeout_and_the_next_call_gets_a_new_one(tmp_path: Path) -> None:
    rt = fake("hang", once=tmp_path / "hung", call_timeout_s=1.0)
    try:
        hung = rt.pid
        started = time.monotonic()
        # A hang is not retried: the same input would most likely hang the new worker too.
        with pytest.raises(WorkerUnavailable, match=r"did not answer score within 1 s: killed"):
            rt.score("c", [Turn("user", "hi", "Ann")])
        assert time.monotonic() - started < 10
        assert rt.deaths == 1 and not _alive(hung)
        got = rt.reply("c", [Turn("user", "@assistant hi", "Ann")])
        assert got.text == f"answer 1 from pid {rt.pid}" and rt.pid != hung and rt.starts == 2
    finally:
        rt.close()


async def test_a_forced_turn_on_a_hung_worker_gets_the_fallback(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "chime.db")
    upgrade(url)
    rt = fake("hang", call_timeout_s=0.5)
    service = ConversationService(Store(url), rt, parse_config({}))
    sender = RecordingSender()
    service.register("test", sender)
    try:
        msg = IncomingMessage(
            channel=ChannelRef("test", "c1"), message_id="m1", author_id="ann", display_name="Ann", text="@assistant hi"
        )
        await service.handle_message(msg)
        await service.drain()
        assert [s.text for s in sender.sent] == [UNAVAILABLE_FALLBACK]  # the service's short apology
    finally:
        await service.close()
        rt.close()


def test_the_worker_dies_with_a_killed_bot(tmp_path: Path) -> None:
    import subprocess
    import sys

    # A bot process whose worker is busy in a long call when the bot is killed with -9.
    script = tmp_path / "bot.py"
    script.write_text(
        "import sys\n"
        "from model_runtime.worker import ProcessRuntime, WorkerSpec\n"
        "from model_runtime.protocol import Turn\n"
        "rt = ProcessRuntime(WorkerSpec('tests.runtime.worker_fakes:crashing', ('hang', None)))\n"
        "print(rt.pid, flush=True)\n"
        "rt.score('c', [Turn('user', 'hi', 'Ann')])\n"
    )
    root = Path(__file__).resolve().parents[2]
    bot = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=root)
    try:
        worker = int(bot.stdout.readline())
        time.sleep(0.5)  # the worker is now inside the hanging call
        assert _alive(worker)
        bot.kill()
        bot.wait()
        deadline = time.monotonic() + 10
        while _alive(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker)
    finally:
        bot.kill()
        bot.wait()


def test_a_crash_loop_fails_fast_while_the_backoff_runs() -> None:
    rt = fake("exit", backoff_s=30.0, max_backoff_s=30.0, max_wait_s=1.0)
    try:
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(WorkerUnavailable):
                rt.score("c", [Turn("user", "hi", "Ann")])
            assert time.monotonic() - started < 5
        assert rt.starts == 1 and rt.deaths == 1  # no restart before the backoff is over
    finally:
        rt.close()


def test_start_up_errors_are_the_backend_s_own() -> None:
    with pytest.raises(RuntimeError_, match="GGUF file not found: /nowhere/model.gguf"):
        ProcessRuntime(WorkerSpec("tests.runtime.worker_fakes:failing_to_start", ("runtime",)))
    with pytest.raises(ImportError) as info:
        ProcessRuntime(WorkerSpec("tests.runtime.worker_fakes:failing_to_start", ("import",)))
    assert info.value.name == "llama_cpp"


def test_build_runtime_isolates_llama_cpp_unless_told_not_to() -> None:
    runtime = {"kind": "llama_cpp", "adapter_path": None, "n_threads": THREADS}
    rt = build_runtime(parse_config({"runtime": runtime}))
    try:
        assert isinstance(rt, ProcessRuntime) and rt.name == "llama_cpp"
    finally:
        rt.close()
    rt = build_runtime(parse_config({"runtime": {**runtime, "isolate": False}}))
    try:
        assert not isinstance(rt, ProcessRuntime) and rt.name == "llama_cpp"
    finally:
        rt.close()
    assert build_runtime(parse_config({"runtime": {"kind": "rules"}})).name == "rules"


async def test_the_service_keeps_going_when_the_worker_dies_on_every_call(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "chime.db")
    upgrade(url)
    rt = fake("segv")
    service = ConversationService(Store(url), rt, parse_config({}))
    sender = RecordingSender()
    service.register("test", sender)
    events: list[DecisionEvent] = []
    service.add_listener(events.append)
    channel = ChannelRef("test", "c1", "general")
    texts = ["what year did the Berlin wall fall?", "@assistant what is 12 times 12?", "still there?"]
    try:
        for i, text in enumerate(texts):
            msg = IncomingMessage(channel=channel, message_id=f"m{i}", author_id="ann", display_name="Ann", text=text)
            await service.handle_message(msg)
            await service.drain()
        assert [e.outcome for e in events] == ["error", "sent", "error"]
        assert [s.text for s in sender.sent] == [UNAVAILABLE_FALLBACK]
        assert sender.sent[0].reply_to == "m1"
        assert rt.deaths == 6
    finally:
        await service.close()
        rt.close()
