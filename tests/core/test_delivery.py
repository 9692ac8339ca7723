"""Delivery guarantees of the core on a real SQLite store: every message gets an outcome, every question one answer.

A "restart" here is a new service on the same database file, as ``chime run`` does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.domain import ChannelRef, CommandContext, IncomingMessage
from bot.service import ConversationService, DecisionEvent
from bot.store import Store
from bot.store.migrate import upgrade
from tests.fakes import RecordingSender, ScriptedRuntime

CH = ChannelRef("test", "c1", "general")
CH2 = ChannelRef("test", "c2", "random")


class Chime:
    """One run of the service on the store at ``url``, with what it decided and sent."""

    def __init__(self, url: str, runtime: ScriptedRuntime, **config: object) -> None:
        self.runtime = runtime
        self.service = ConversationService(Store(url), runtime, parse_config(config))
        self.sender = RecordingSender()
        self.service.register("test", self.sender)
        self.events: list[DecisionEvent] = []
        self.service.add_listener(self.events.append)

    async def say(self, mid: str, text: str, name: str = "Ann", channel: ChannelRef = CH, **kw: object) -> None:
        msg = IncomingMessage(
            channel=channel, message_id=mid, author_id=name.lower(), display_name=name, text=text, **kw
        )
        await self.service.handle_message(msg)

    def outcomes(self, channel: ChannelRef = CH) -> dict[str, str | None]:
        store = self.service.store
        return dict(store.message_outcomes(store.channel(channel).pk))

    def answered(self) -> list[str]:
        """The message each sent reply answers, in sending order."""
        return [s.reply_to for s in self.sender.sent]


@pytest.fixture
async def chime(store_url: str) -> AsyncIterator:
    """Start runs of chime on one store (SQLite, then PostgreSQL)."""
    url = store_url
    upgrade(url)
    runs: list[Chime] = []

    def start(runtime: ScriptedRuntime | None = None, **config: object) -> Chime:
        run = Chime(url, runtime or ScriptedRuntime(0.0), **config)
        runs.append(run)
        return run

    yield start
    for run in runs:
        await run.service.close()


async def test_two_quick_questions_are_each_answered_once_about_themselves(chime) -> None:
    c = chime(ScriptedRuntime(0.0, delay_s=0.2))
    await c.say("m1", "@assistant what is 12 times 12?", name="Alice")
    await c.say("m2", "@assistant what is the boiling point of water?", name="Bob")
    await c.service.drain()
    assert c.answered() == ["m1", "m2"]
    forced = c.runtime.replies
    assert [call.window[-1].content for call in forced] == [
        "@assistant what is 12 times 12?",
        "@assistant what is the boiling point of water?",
    ]
    assert c.outcomes() == {"m1": "sent", "m2": "sent", "bot-1": "own", "bot-2": "own"}


async def test_many_questions_at_once_in_several_channels_are_all_answered_once(chime) -> None:
    c = chime(ScriptedRuntime(0.0, delay_s=0.01))
    await asyncio.gather(*(c.say(f"q{i}", f"@assistant question {i}", channel=(CH, CH2)[i % 2]) for i in range(20)))
    await c.service.drain()
    assert sorted(c.answered()) == sorted(f"q{i}" for i in range(20))


async def test_a_carried_over_question_is_answered_about_itself(chime) -> None:
    c = chime(ScriptedRuntime(0.0, delay_s=0.2))
    await c.say("m1", "nice weather today")  # being decided while the rest arrives
    await asyncio.sleep(0.05)
    await c.say("q", "@assistant what time zone is Lisbon in?", name="Bob")
    for i in range(10):
        await c.say(f"chat{i}", f"yes, it's a lovely day {i}")
    await c.service.drain()
    [answer] = c.runtime.replies
    assert answer.window[-1].content == "@assistant what time zone is Lisbon in?"
    assert not any("lovely day" in t.content for t in answer.window), "what followed the question is left out"
    assert c.answered() == ["q"]
    # The chit-chat is decided once, on its latest line; the lines before it are recorded as superseded.
    assert c.runtime.calls[-1].window[-1].content == "yes, it's a lovely day 9"
    outcomes = c.outcomes()
    assert [outcomes[f"chat{i}"] for i in range(9)] == ["superseded"] * 9
    assert outcomes["chat9"] == "silent" and outcomes["q"] == "sent" and outcomes["m1"] == "silent"


async def test_every_stored_message_gets_an_outcome(chime) -> None:
    c = chime(ScriptedRuntime(lambda w: 0.9 if "capital" in w[-1].content else 0.1, delay_s=0.02))
    await c.say("blank", "   ")
    await c.say("bot", "beep", name="OtherBot", is_bot=True)
    await asyncio.gather(*(c.say(f"b{i}", f"burst {i}") for i in range(15)))
    await c.say("cap", "what's the capital of australia?")
    await c.service.drain()
    await c.service.run_command(CommandContext(CH, "ann", "Ann", is_admin=True), "mute")
    await c.say("muted", "@assistant are you there?")
    await c.service.drain()
    outcomes = c.outcomes()
    assert None not in outcomes.values(), outcomes
    # A blank message is not stored at all (nothing was said), so it owes no outcome.
    assert "blank" not in outcomes
    assert (outcomes["bot"], outcomes["muted"]) == ("bot", "muted")
    assert outcomes["cap"] == "sent"


async def test_a_stop_leaves_the_waiting_question_for_the_next_start(chime, caplog) -> None:
    caplog.set_level(logging.INFO)
    first = chime(ScriptedRuntime(0.0, delay_s=0.3))
    await first.say("q1", "@assistant one")
    await asyncio.sleep(0.05)
    await first.say("q2", "@assistant two", name="Bob")
    await first.service.close()
    assert first.answered() == ["q1"], "the running decision finished"
    assert first.outcomes()["q2"] is None
    assert any("question q2 in test:c1 left for the next start" in r.getMessage() for r in caplog.records)
    await first.say("late", "said while shutting down")  # not stored, no crash

    second = chime(ScriptedRuntime(0.0))
    assert await second.service.resume_pending() == 1
    await second.service.drain()
    assert second.answered() == ["q2"]
    assert second.runtime.calls[-1].window[-1].content == "@assistant two"
    # A third start has nothing left to do: answered exactly once.
    await second.service.close()
    third = chime(ScriptedRuntime(0.0))
    assert await third.service.resume_pending() == 0


async def test_messages_arriving_while_finishing_are_stored_and_decided_at_the_next_start(chime) -> None:
    first = chime(ScriptedRuntime(0.0, delay_s=0.2))
    await first.say("q1", "@assistant one")
    await asyncio.sleep(0.05)
    finishing = asyncio.create_task(first.service.finish())
    await asyncio.sleep(0.01)
    await first.say("q2", "@assistant asked during the stop")
    await finishing
    await first.service.close()
    second = chime(ScriptedRuntime(0.0))
    await second.service.resume_pending()
    await second.service.drain()
    assert first.answered() == ["q1"] and second.answered() == ["q2"]


async def test_a_question_older_than_the_freshness_limit_is_recorded_not_answered(chime, caplog) -> None:
    caplog.set_level(logging.WARNING)
    c = chime(ScriptedRuntime(0.0), conversation={"forced_freshness_s": 60})
    old = datetime.now(UTC) - timedelta(minutes=5)
    await c.say("old", "@assistant still there?", created_at=old)
    await c.say("new", "@assistant and now?")
    await c.service.drain()
    assert c.answered() == ["new"]
    assert c.outcomes()["old"] == "stale"
    assert any("question old in test:c1 is 300 s old" in r.getMessage() for r in caplog.records)


async def test_resuming_twice_does_not_answer_twice(chime) -> None:
    first = chime(ScriptedRuntime(0.0, delay_s=0.3))
    await first.say("q1", "@assistant one")
    await asyncio.sleep(0.05)
    await first.say("q2", "@assistant two")
    await first.service.close()
    second = chime(ScriptedRuntime(0.0, delay_s=0.1))
    await second.service.resume_pending()
    await second.service.resume_pending()  # e.g. a reconnect while q2 is still being answered
    await second.service.drain()
    assert second.answered() == ["q2"]


async def test_after_forget_new_messages_are_still_decided(chime) -> None:
    c = chime(ScriptedRuntime(0.1))
    for i in range(5):
        await c.say(f"other{i}", f"elsewhere {i}", channel=CH2)
    for i in range(5):
        await c.say(f"m{i}", f"chat {i}")
    await c.service.drain()
    admin = CommandContext(CH, "ann", "Ann", is_admin=True)
    assert "5 messages deleted" in await c.service.run_command(admin, "forget")
    await c.say("after", "anyone remember what year the Berlin wall fell?")
    await c.service.drain()
    assert c.events[-1].trigger.message_id == "after" and c.events[-1].outcome == "silent"
    assert c.outcomes() == {"after": "silent"}
    store = c.service.store
    assert [d.outcome for d in store.decisions(store.channel(CH).pk)] == ["silent"]


async def test_forgotten_messages_are_never_stored_again(chime) -> None:
    c = chime(ScriptedRuntime(0.1))
    await c.say("secret", "my number is 555-0100", name="Bob")
    await c.say("keep", "noted")
    await c.service.drain()
    bob = CommandContext(CH, "bob", "Bob", is_admin=False)
    assert "1 messages" in await c.service.run_command(bob, "forget-me")
    # Re-delivered (a replayed sync batch, a read-back), or edited: it stays forgotten.
    await c.say("secret", "my number is 555-0100", name="Bob")
    assert not await c.service.handle_edit(CH, "secret", "my number is 555-0199")
    # A deletion that arrives before its message keeps it out too.
    await c.service.handle_delete(CH, "redacted-early")
    await c.say("redacted-early", "oops", name="Bob")
    await c.service.drain()
    assert list(c.outcomes()) == ["keep"]
    assert await c.service.known_message("test", "secret")


async def test_retention_tombstones_and_refuses_what_it_would_purge(chime) -> None:
    c = chime(ScriptedRuntime(0.1), store={"retention_days": 7})
    old = datetime.now(UTC) - timedelta(days=8)
    store = c.service.store
    store.add_message(
        IncomingMessage(channel=CH, message_id="ancient", author_id="a", display_name="A", text="x", created_at=old),
        channel_pk=store.channel(CH).pk,
    )
    assert (await c.service.purge_expired())[0] == 1
    await c.say("ancient", "x", created_at=old)  # read back again
    await c.say("also-old", "never seen before, but past the retention", created_at=old)
    await c.service.drain()
    assert c.outcomes() == {}


async def test_forget_me_leaves_no_readable_text_in_the_database_files(chime, tmp_path: Path) -> None:
    c = chime(ScriptedRuntime(0.1))
    if not c.service.store.url.startswith("sqlite"):
        pytest.skip("SQLite's files: PostgreSQL's are the server's")
    await c.say("a1", "my address is 42 Sesame Street", name="Bob")
    await c.say("a2", "my CV, pasted: phone 555-0100. " + "I worked at the Sesame Street workshop. " * 100, name="Bob")
    await c.say("b1", "thanks Bob")
    await c.service.drain()
    bob = CommandContext(CH, "bob", "Bob", is_admin=False)
    assert "2 messages" in await c.service.run_command(bob, "forget-me")
    # While the bot still runs: neither the database nor its write-ahead log holds the text.
    for name in ("chime.db", "chime.db-wal"):
        path = tmp_path / name
        data = path.read_bytes() if path.exists() else b""
        assert b"Sesame" not in data and b"555-0100" not in data, name
    assert b"thanks Bob" in (tmp_path / "chime.db").read_bytes()
