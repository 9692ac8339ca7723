"""Fixtures: a fake Discord on 127.0.0.1 and a chime service whose Discord adapter is connected to it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from adapters.discord import DiscordAdapter, create_adapter
from bot.config import parse_config
from bot.service import ConversationService, DecisionEvent
from bot.store import Store, StoredMessage, sqlite_url
from bot.store.migrate import upgrade
from tests.discord.fake_discord import FakeDiscord
from tests.fakes import ScriptedRuntime

TOKEN_ENV = "CHIME_TEST_DISCORD_TOKEN"


async def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it is true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


@dataclass
class Bot:
    """A running chime with its Discord adapter, and what it decided."""

    fake: FakeDiscord
    service: ConversationService
    runtime: ScriptedRuntime
    adapter: DiscordAdapter
    task: asyncio.Task[None]
    events: list[DecisionEvent] = field(default_factory=list)

    async def decisions(self, n: int, timeout: float = 10.0) -> list[DecisionEvent]:
        """Wait until ``n`` decisions were made; returns them all."""
        await wait_until(lambda: len(self.events) >= n, timeout, f"{n} decisions (have {len(self.events)})")
        return self.events

    async def stored(self, channel_id: int) -> list[StoredMessage]:
        """The channel's stored messages, oldest first."""
        store = self.service.store
        found = await self.service.db(store.find_channel, f"discord:{channel_id}")
        return [] if found is None else await self.service.db(store.all_messages, found.pk)

    async def outcomes(self, channel_id: int) -> dict[str, str | None]:
        """Each stored message of the channel with its recorded outcome."""
        store = self.service.store
        found = await self.service.db(store.find_channel, f"discord:{channel_id}")
        return {} if found is None else dict(await self.service.db(store.message_outcomes, found.pk))

    async def stop(self) -> None:
        """Shut this chime down as ``chime run`` does (the fixture's own clean-up is then a no-op)."""
        await self.service.finish()
        await self.adapter.close()
        await asyncio.wait_for(self.task, 10)
        await self.service.close()

    async def settle(self) -> None:
        """Let in-flight events reach the core and every decision finish."""
        await asyncio.sleep(0.2)
        await self.service.drain()


MakeBot = Callable[..., Awaitable[Bot]]


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    """A fresh fake Discord with two text channels and a thread."""
    server = FakeDiscord()
    server.general = server.add_channel("general")
    server.random = server.add_channel("random")
    server.thread = server.add_channel("plans", parent_id=server.general)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make_bot(fake: FakeDiscord, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[MakeBot]:
    """Start chime connected to ``fake``; keyword arguments go to adapters.discord, p_speak/reply to the runtime."""
    monkeypatch.setenv(TOKEN_ENV, fake.token)
    bots: list[Bot] = []

    async def factory(
        p_speak: Any = 0.0, reply: str = "scripted reply", wait: bool = True, db: str | None = None, **discord_cfg: Any
    ) -> Bot:
        # ``db`` names the store file: give two bots the same one to restart chime on its data.
        url = sqlite_url(tmp_path / (db or f"chime{len(bots)}.db"))
        upgrade(url)
        runtime = ScriptedRuntime(p_speak, reply=reply)
        cfg = {"enabled": True, "token_env": TOKEN_ENV, "api_base_url": fake.api_base_url, **discord_cfg}
        config = parse_config({"adapters": {"console": {"enabled": False}, "discord": cfg}})
        service = ConversationService(Store(url), runtime, config)
        adapter = create_adapter(service, config.adapters.discord)
        bot = Bot(fake, service, runtime, adapter, asyncio.create_task(adapter.run()))
        service.add_listener(bot.events.append)
        bots.append(bot)
        if not wait:
            return bot

        def client_ready() -> bool:
            return adapter.client is not None and adapter.client.get_guild(fake.guild_id) is not None

        await wait_until(client_ready, 10, "the client to connect and receive its guild")
        await wait_until(lambda: fake.commands, 10, "the slash commands to be synced")
        return bot

    yield factory
    for bot in bots:
        await bot.adapter.close()
        await asyncio.wait_for(bot.task, 10)
        await bot.service.close()
