"""Memory in a Matrix room: `!assistant learn` as a reply to a file or a message, and answers that link their source."""

from __future__ import annotations

import io

import pytest

from bot.domain import ChannelRef
from tests.matrix.helpers import Person, replying_to
from tests.matrix.test_admin import command
from tests.matrix.test_conversation import joined_room

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]
HANDBOOK = b"# Office\n\n## Keys\n\nSpare keys are in the grey box by reception; the box code is 9314.\n"


def reply(event_id: str) -> dict:
    return {"m.relates_to": {"m.in_reply_to": {"event_id": event_id}}}


async def test_learn_a_file_or_a_message_by_replying_to_it(alice: Person, bob: Person, make_bot) -> None:
    bot = make_bot()
    await bot.start()
    room, _ = await joined_room(alice, bob, bot)
    up, _ = await alice.client.upload(
        io.BytesIO(HANDBOOK), content_type="text/markdown", filename="handbook.md", filesize=len(HANDBOOK)
    )
    content = {"msgtype": "m.file", "body": "handbook.md", "url": up.content_uri, "info": {"size": len(HANDBOOK)}}
    file_event = await alice.send_event(room, "m.room.message", content)
    assert (await command_to(alice, room, "!assistant learn", file_event)).startswith("Learnt handbook.md (1 passages)")
    note = await bob.send(room, "the fire exit is behind the kitchen, past the bins")
    # Bob is no admin: refused, and nothing was fetched for him.
    assert "only channel admins" in await command_to(bob, room, "!assistant learn", note)
    assert (await command_to(alice, room, "!assistant learn", note)).startswith(f"Learnt message {note}.txt")
    assert "handbook.md: 1 passages, added by" in await command(bob, room, "!assistant documents")

    pk = (await bot.service.channel_settings(ChannelRef("matrix", room))).pk
    found = bot.service.memory.search(pk, "where is the box code for the spare keys?")
    assert found[0].document == "handbook.md"
    asked = await bob.send(room, "@assistant what was the code of our key box?")
    answer = await bob.wait_for(room, replying_to(asked))
    assert "9314" in answer["content"]["body"] and "[handbook.md]" in answer["content"]["body"]


async def command_to(person: Person, room: str, text: str, target: str) -> str:
    """Run a command as a reply to ``target``; the bot's answer."""
    event_id = await person.send(room, text, **reply(target))
    answer = await person.wait_for(room, replying_to(event_id))
    return answer["content"]["body"]
