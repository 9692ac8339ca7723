"""Feedback from a Matrix room: a 👎 (m.reaction) on an unasked reply labels it; ``!assistant why`` shows it."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.domain import ChannelRef
from tests.fakes import ScriptedRuntime
from tests.matrix.helpers import Bot, Person, replying_to, wait_until
from tests.matrix.test_admin import command
from tests.matrix.test_conversation import joined_room

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def react(person: Person, room: str, event_id: str, key: str) -> str:
    """``person`` annotates ``event_id`` with ``key``; returns the reaction's event id."""
    relates = {"rel_type": "m.annotation", "event_id": event_id, "key": key}
    return await person.send_event(room, "m.reaction", {"m.relates_to": relates})


async def label_counts(bot: Bot, room: str) -> list[int]:
    """The label count of each decision in the room, newest first."""
    return [d.labels for d in await bot.service.ops.recent_decisions(ChannelRef("matrix", room))]


async def test_a_thumbs_down_labels_only_an_unasked_reply(alice: Person, bob: Person, make_bot) -> None:
    bot = make_bot()
    # The bot chooses to speak about walls only; everything else it leaves to the room.
    bot.runtime = ScriptedRuntime(lambda window: 0.9 if "wall" in window[-1].content else 0.05)
    await bot.start()
    room, _ = await joined_room(alice, bob, bot)

    unasked = await alice.send(room, "when did the berlin wall fall again?")
    reply = await alice.wait_for(room, replying_to(unasked))
    asked = await bob.send(room, "@assistant and how long was it?")
    forced_reply = await bob.wait_for(room, replying_to(asked))
    chat = await bob.send(room, "anyway, lunch?")
    await wait_until(lambda: bot.decided_on(chat), what="a decision on the last message")

    # A 👎 in a skin tone, then a plain one, from the same person: one label.
    first = await react(bob, room, reply["event_id"], "👎🏽")
    await react(bob, room, reply["event_id"], "👎")
    # A 👎 on a reply someone asked for, on a person's message, or a 👍: no label.
    await react(alice, room, forced_reply["event_id"], "👎")
    await react(alice, room, chat, "👎")
    await react(alice, room, reply["event_id"], "👍")
    await react(alice, room, reply["event_id"], "👎️")  # with the emoji presentation selector
    # Events are handled in timeline order: once Alice's last 👎 counts, every reaction before it was seen.
    await labels_become(bot, room, [0, 0, 2])

    why = await command(alice, room, "!assistant why")
    lines = why.splitlines()
    assert lines[0].startswith("Last 3 decisions in matrix:")
    assert " silent p 0.05 < 0.50 | bob: anyway, lunch?" in lines[1]
    assert " forced p 0.05 < 0.50 | bob: @assistant and how long was it?" in lines[2]
    assert " spoke p 0.90 ≥ 0.50 👎 false interruption x2 | alice: when did the berlin wall fall again?" in lines[3]
    assert (await command(bob, room, "!assistant why")).startswith("Sorry, only channel admins")

    # Taking the reaction back (a redaction of the reaction event) takes the label back.
    await bob.client.room_redact(room, first)
    await labels_become(bot, room, [0, 0, 1])


async def labels_become(bot: Bot, room: str, expected: list[int], timeout: float = 30) -> None:
    """Poll the store until the room's label counts are ``expected``; fail with what they are after ``timeout``."""
    deadline = time.monotonic() + timeout
    while (got := await label_counts(bot, room)) != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert got == expected
