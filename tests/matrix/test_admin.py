"""Admin commands in a Matrix room: power level 50 (or being the room's creator) needed for the admin ones."""

from __future__ import annotations

import pytest

from bot.domain import ChannelRef
from tests.matrix.helpers import Person, replying_to
from tests.matrix.test_conversation import joined_room

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def command(person: Person, room: str, text: str) -> str:
    """Run a command as ``person``; the bot's m.notice answer."""
    event_id = await person.send(room, text)
    answer = await person.wait_for(room, replying_to(event_id))
    assert answer["content"]["msgtype"] == "m.notice"
    return answer["content"]["body"]


async def test_admin_commands_for_admins_only(alice: Person, bob: Person, make_bot) -> None:
    bot = make_bot()
    await bot.start()
    room, _ = await joined_room(alice, bob, bot)

    # Alice created the room: she may mute it. Bob (power level 0) may not unmute it.
    assert (await command(alice, room, "!assistant mute")).startswith("Muted")
    assert (await command(bob, room, "!assistant unmute")).startswith("Sorry, only channel admins")
    assert (await command(bob, room, "!assistant status")).startswith("muted in matrix:")

    # Muted: a mention gets no reply (the next command's answer shows the mention was handled).
    ignored = await bob.send(room, "@assistant hello?")
    assert "muted" in await command(bob, room, "!assistant status")
    assert not bot.decided_on(ignored)
    assert await bot.stored(ignored) is not None

    # Alice raises Bob to 50: now he is an admin.
    levels = await alice.client.room_get_state_event(room, "m.room.power_levels")
    content = levels.content
    content.setdefault("users", {})[bob.user_id] = 50
    await alice.client.room_put_state(room, "m.room.power_levels", content)
    assert (await command(bob, room, "!assistant talkativeness 80")).startswith("Talkativeness set to 80")
    assert (await command(bob, room, "!assistant unmute")).startswith("Unmuted")
    assert (await command(bob, room, "!assistant history 10")).startswith("I'll read the last 10")
    settings = await bot.service.channel_settings(ChannelRef("matrix", room))
    assert (settings.muted, settings.talkativeness, settings.history_size) == (False, 80, 10)

    # Unmuted: mentions are answered again; forget-me deletes Bob's messages only.
    asked = await bob.send(room, "@assistant back?")
    await bob.wait_for(room, replying_to(asked))
    assert (await command(bob, room, "!assistant forget-me")).startswith("Deleted everything I stored from you")
    assert await bot.stored(asked) is None
    assert (await command(alice, room, "!assistant bogus")).startswith("Unknown command 'bogus'")
    assert (await command(alice, room, "!assistant forget")).startswith("Forgot this channel's history")


async def test_admin_power_level_is_configurable(alice: Person, bob: Person, make_bot) -> None:
    bot = make_bot(admin_power_level=100)
    await bot.start()
    room, _ = await joined_room(alice, bob, bot)
    levels = await alice.client.room_get_state_event(room, "m.room.power_levels")
    content = levels.content
    content.setdefault("users", {})[bob.user_id] = 50
    await alice.client.room_put_state(room, "m.room.power_levels", content)
    assert (await command(bob, room, "!assistant mute")).startswith("Sorry, only channel admins")
    assert (await command(alice, room, "!assistant mute")).startswith("Muted")
