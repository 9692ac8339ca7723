"""The OpenAI-compatible runtime sends calls for different channels at once, up to max_concurrency.

Against ``benchmarks/fake_openai_server.py`` (a vLLM-like ``/v1/completions`` that holds
each request a set time and records how many it held at once, and when it saw each
message), started on 127.0.0.1 as a process of its own.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.config import parse_config
from bot.domain import ChannelRef, IncomingMessage
from bot.service import ConversationService, DecisionEvent
from bot.store import Store, sqlite_url
from bot.store.migrate import upgrade
from model_runtime import OpenAICompatOptions, Turn, create_runtime

pytest.importorskip("llama_cpp")  # the prompt's template and tokenizer come from the bundled GGUF

ROOT = Path(__file__).resolve().parents[2]
DELAY_MS = 150


@pytest.fixture
def server() -> Iterator[str]:
    """A fresh fake server (its records start empty); its URL."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / "fake_openai_server.py"), "--delay-ms", str(DELAY_MS)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        yield f"http://127.0.0.1:{proc.stdout.readline().split()[1]}"
    finally:
        proc.terminate()
        proc.wait(10)


def stats(url: str) -> dict:
    return httpx.get(f"{url}/stats", timeout=10).json()


def window(n: int) -> list[Turn]:
    return [Turn(role="user", name="Ann", content=f"[{n}] lol that's great")]


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_channels_are_scored_at_once_up_to_max_concurrency(server: str, concurrency: int) -> None:
    runtime = create_runtime(OpenAICompatOptions(base_url=server, model="chime", max_concurrency=concurrency))
    try:
        scores = await asyncio.gather(*(runtime.ascore(f"c{n}", window(n)) for n in range(8)))
    finally:
        runtime.close()
    assert all(0.0 < s.p_speak < 0.2 for s in scores)
    seen = stats(server)
    # A silent turn is scored in one request (the model goes on "(sil" by itself);
    # decisions up to max_concurrency at once.
    assert seen["requests"] == 8
    assert seen["max_in_flight"] == concurrency
    assert all(span < 1.8 * DELAY_MS for span in seen["spans_ms"].values()), seen["spans_ms"]


async def test_each_channel_stays_one_decision_at_a_time_in_order(server: str, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "chime.db")
    upgrade(url)
    config = parse_config(
        {
            "runtime": {"kind": "openai", "base_url": server, "model": "chime", "max_concurrency": 8},
            "adapters": {"console": {"enabled": False}},
        }
    )
    runtime = create_runtime(config.runtime.decider)
    service = ConversationService(Store(url), runtime, config)
    decided: list[DecisionEvent] = []
    service.add_listener(decided.append)
    channels = [ChannelRef("test", f"c{i}", f"room {i}") for i in range(3)]
    # Four questions per channel ("@assistant" forces each: none is superseded, each is decided).
    sent: dict[str, list[str]] = {ch.key: [] for ch in channels}
    for n in range(12):
        ch = channels[n % 3]
        msg = IncomingMessage(ch, f"m{n}", "ann", "Ann", f"[{n}] @assistant what now?")
        sent[ch.key].append(str(n))
        assert await service.handle_message(msg)
    await service.drain()
    await service.close()
    runtime.close()
    seen = stats(server)
    assert len(decided) == 12 and seen["max_in_flight"] > 1, "channels were decided one at a time"
    spans = seen["spans_at"]
    for key, numbers in sent.items():
        # Within a channel: each message's requests start after the previous one's ended.
        times = [spans[n] for n in numbers]
        assert all(a[1] <= b[0] for a, b in zip(times, times[1:], strict=False)), (key, times)
