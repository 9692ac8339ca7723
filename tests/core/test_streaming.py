"""Streamed replies: posted at the first words, edited in place at most once per interval, typing until then."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.domain import ChannelRef, IncomingMessage
from bot.service import ConversationService, DecisionEvent
from bot.store import Store, sqlite_url
from bot.store.migrate import upgrade
from tests.fakes import EditingSender, RecordingSender, ScriptedRuntime

CH = ChannelRef("test", "c1", "general")
LONG = " ".join(f"word{i}" for i in range(1, 25))


class Room:
    def __init__(self, tmp_path: Path, runtime: ScriptedRuntime, sender: RecordingSender, interval_s: float) -> None:
        url = sqlite_url(tmp_path / "chime.db")
        upgrade(url)
        config = parse_config({"conversation": {"stream_interval_s": interval_s}})
        self.service = ConversationService(Store(url), runtime, config)
        self.sender = sender
        self.service.register("test", sender)
        self.events: list[DecisionEvent] = []
        self.service.add_listener(self.events.append)
        self._n = 0

    async def say(self, text: str, name: str = "Ann") -> None:
        self._n += 1
        await self.service.handle_message(IncomingMessage(CH, f"m{self._n}", name.lower(), name, text))

    def stored(self) -> list:
        return self.service.store.all_messages(self.service.store.channel(CH).pk)


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator:
    rooms: list[Room] = []

    def factory(runtime: ScriptedRuntime, sender: RecordingSender, interval_s: float = 0.3) -> Room:
        where = tmp_path / str(len(rooms))
        where.mkdir()
        rooms.append(Room(where, runtime, sender, interval_s))
        return rooms[-1]

    yield factory
    for r in rooms:
        await r.service.close()


async def test_a_streamed_reply_is_one_message_edited_to_the_full_text(make) -> None:
    sender = EditingSender()
    r = make(ScriptedRuntime(0.0, reply=LONG, word_delay_s=0.05), sender, interval_s=0.3)
    await r.say("@assistant tell me a long story")
    await r.service.drain()
    # One message, posted at the first words, then edited in place up to the whole text.
    assert len(sender.sent) == 1 and sender.sent[0].text == "word1"
    assert len(sender.edits) >= 2 and sender.edits[-1].text == LONG
    assert {e.message_id for e in sender.edits} == {"bot-1"}
    # At most one edit per interval in the room (the post counts as the first change).
    times = [sender.posted_at[0]] + [e.at for e in sender.edits]
    assert all(b - a >= 0.3 - 0.02 for a, b in zip(times, times[1:], strict=False)), times
    assert len(sender.edits) <= 24 * 0.05 / 0.3 + 2  # not one edit per word
    # Typing showed until the first words were posted, not after.
    assert sender.typing_channels == [CH.key] and sender.typing_ended_at[0] <= sender.posted_at[0]
    # The store keeps the reply as the room finally sees it.
    assert r.events[-1].outcome == "sent" and r.events[-1].reply_text == LONG
    assert r.stored()[-1].text == LONG and r.stored()[-1].platform_message_id == "bot-1"


async def test_without_edits_or_with_streaming_off_the_reply_is_sent_whole(make) -> None:
    plain = RecordingSender()
    r = make(ScriptedRuntime(0.0, reply=LONG, word_delay_s=0.01), plain)
    await r.say("@assistant tell me a long story")
    await r.service.drain()
    assert [s.text for s in plain.sent] == [LONG]
    off = EditingSender()
    r = make(ScriptedRuntime(0.0, reply=LONG, word_delay_s=0.01), off, interval_s=0)
    await r.say("@assistant tell me a long story")
    await r.service.drain()
    assert [s.text for s in off.sent] == [LONG] and off.edits == []


async def test_an_unforced_reply_overtaken_before_its_first_words_is_not_posted(make) -> None:
    sender = EditingSender()
    r = make(ScriptedRuntime(0.9, reply=LONG, word_delay_s=0.1), sender)
    await r.say("does anyone know the boiling point of water?")
    await asyncio.sleep(0.05)  # scored, writing: the first word is not out yet
    await r.say("100 C at sea level", name="Ben")
    await r.service.drain()
    assert [e.outcome for e in r.events] == ["superseded", "sent"]
    assert [s.reply_to for s in sender.sent] == ["m2"]


async def test_a_responder_failing_mid_reply_leaves_what_was_posted(make) -> None:
    sender = EditingSender()
    r = make(ScriptedRuntime(0.0, reply=LONG, word_delay_s=0.05, fail_after=8), sender, interval_s=0.1)
    await r.say("@assistant tell me a long story")
    await r.service.drain()
    shown = sender.edits[-1].text if sender.edits else sender.sent[0].text
    assert len(sender.sent) == 1 and LONG.startswith(shown) and shown != LONG
    assert r.events[-1].outcome == "sent" and r.stored()[-1].text == shown


async def test_a_streamed_reply_whose_post_fails_is_not_sent_again(make) -> None:
    sender = EditingSender(fail=True)
    r = make(ScriptedRuntime(0.0, reply=LONG, word_delay_s=0.01), sender)
    await r.say("@assistant tell me a long story")
    await r.service.drain()
    assert len(sender.posted_at) == 1 and sender.sent == [] and sender.edits == []
    assert r.events[-1].outcome == "send_failed"
