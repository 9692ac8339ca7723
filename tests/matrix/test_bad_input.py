"""Bad input in Matrix rooms: odd events, HTML, huge messages, imitated names, invites, kicks, encryption."""

from __future__ import annotations

import logging

import pytest
from nio import ProfileSetDisplayNameResponse

from adapters.matrix.events import inviter_allowed
from tests.matrix.helpers import Person, replying_to, wait_until
from tests.matrix.test_conversation import joined_room

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def membership(person: Person, room: str, user_id: str) -> str | None:
    """The latest membership of ``user_id`` in ``room`` that ``person`` has seen."""
    found = [
        e["content"].get("membership")
        for e in person.events.get(room, [])
        if e.get("type") == "m.room.member" and e.get("state_key") == user_id
    ]
    return found[-1] if found else None


async def test_odd_events_html_huge_and_edits(alice: Person, bob: Person, make_bot) -> None:
    bot = make_bot()
    await bot.start()
    room, _ = await joined_room(alice, bob, bot)

    await alice.send_event(room, "org.example.unknown", {"anything": [1, 2, 3]})
    # Valid for the homeserver, odd for a client: ignored, or read defensively.
    await alice.send_event(room, "m.room.message", {"msgtype": "org.example.weird", "body": "?"})
    await alice.send_event(room, "m.room.message", {"msgtype": "m.text", "body": "x", "formatted_body": 5})
    odd = await alice.send(room, "odd relations", **{"m.relates_to": "not a dict"})
    html = await bob.send(
        room,
        "**bold** plan",
        format="org.matrix.custom.html",
        formatted_body="<b>bold</b> plan<script>alert('x')</script>",
    )
    html_only = await bob.send(room, "", format="org.matrix.custom.html", formatted_body="<p>only <i>html</i></p>")
    huge = await alice.send(room, "x" * 60_000)
    await wait_until(lambda: bot.decided_on(huge), what="a decision on the huge message")
    assert (await bot.stored(odd)).text == "odd relations"
    assert (await bot.stored(html)).text == "**bold** plan"
    assert (await bot.stored(html_only)).text == "only html"
    assert len((await bot.stored(huge)).text) == 60_000
    assert len(bot.runtime.calls[-1].window[-1].content) < 3000  # the core caps it for the prompt

    # Edits by the author apply; an "edit" by someone else does not; a redaction deletes.
    original = await alice.send(room, "meeting at 3")
    edit = {"m.new_content": {"msgtype": "m.text", "body": "meeting at 4"}}
    await alice.send(
        room, "* meeting at 4", **edit, **{"m.relates_to": {"rel_type": "m.replace", "event_id": original}}
    )
    forged = {"m.new_content": {"msgtype": "m.text", "body": "meeting cancelled"}}
    await bob.send(room, "* cancelled", **forged, **{"m.relates_to": {"rel_type": "m.replace", "event_id": original}})
    redacted = await bob.send(room, "oops, wrong room")
    await wait_until(lambda: bot.decided_on(redacted), what="the message to redact")
    await bob.client.room_redact(room, redacted)
    # The bot still answers, and by then it has handled everything before.
    asked = await bob.send(room, "@assistant still with us?")
    await bob.wait_for(room, replying_to(asked))
    assert (await bot.stored(original)).text == "meeting at 4"
    assert await bot.stored(redacted) is None


async def test_images_files_and_stickers_are_stored_as_placeholders(alice: Person, bob: Person, make_bot) -> None:
    bot = make_bot()
    await bot.start()
    room, _ = await joined_room(alice, bob, bot)
    mxc = "mxc://localhost/abcdef"
    image = await alice.send_event(room, "m.room.message", {"msgtype": "m.image", "body": "cat.png", "url": mxc})
    captioned = await bob.send_event(
        room, "m.room.message", {"msgtype": "m.file", "body": "the minutes", "filename": "minutes.pdf", "url": mxc}
    )
    sticker = await alice.send_event(room, "m.sticker", {"body": "thumbs up", "url": mxc, "info": {}})
    await wait_until(lambda: bot.decided_on(sticker), what="a decision on the sticker")
    assert (await bot.stored(image)).text == "[image: cat.png]"
    assert (await bot.stored(captioned)).text == "the minutes\n[file: minutes.pdf]"
    assert (await bot.stored(sticker)).text == "[sticker: thumbs up]"


async def test_imitated_display_names(alice: Person, bob: Person, make_bot) -> None:
    bot = make_bot()
    await bot.start()
    room, _ = await joined_room(alice, bob, bot)
    # The people are shared with the other Matrix tests: their names are put back however this ends.
    try:
        assert isinstance(await alice.client.set_displayname("Alice"), ProfileSetDisplayNameResponse)

        async def say_as(name: str) -> str:
            resp = await bob.client.set_displayname(name)
            assert isinstance(resp, ProfileSetDisplayNameResponse), resp
            # Wait for the name change to be seen, then speak.
            await bob.wait_for(
                room, lambda e: e.get("type") == "m.room.member" and e["content"].get("displayname") == name
            )
            event_id = await bob.send(room, f"hello from {name}")
            await wait_until(lambda: bot.decided_on(event_id), what=f"a decision on {name}'s message")
            return (await bot.stored(event_id)).display_name

        assert await say_as("Bob") == "Bob"
        assert await say_as("ALICE") == f"ALICE [{bob.user_id}]"  # looks like another member
        alice_msg = await alice.send(room, "I am the real one")
        await wait_until(lambda: bot.decided_on(alice_msg), what="Alice's message")
        assert (await bot.stored(alice_msg)).display_name == f"Alice [{alice.user_id}]"  # two alikes: both marked
        assert await say_as("Assistant") == f"Assistant [{bob.user_id}]"  # looks like the bot
        # A name carrying someone else's id: marked, and cut so that the core's 32-character cap keeps the real id.
        forged = await say_as(f"Al {alice.user_id}")
        assert forged.startswith("Al @alice") and forged.endswith(f" [{bob.user_id}]") and len(forged) <= 32
    finally:
        await alice.client.set_displayname("alice")
        await bob.client.set_displayname("bob")


async def test_invites_kicks_and_encrypted_rooms(
    alice: Person, bob: Person, make_bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="adapters.matrix")
    bot = make_bot(allowed_inviters=[alice.user_id])
    await bot.start()

    # Bob may not invite the bot: declined. Alice may.
    bobs = await bob.create_room(invite=[bot.user_id])
    await wait_until(lambda: membership(bob, bobs, bot.user_id) == "leave", what="the declined invite")
    room, _ = await joined_room(alice, bob, bot)

    # In an encrypted room without E2EE the bot posts nothing and warns once.
    encryption = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
    secret = await alice.create_room(invite=[bot.user_id], initial_state=[encryption])
    await alice.wait_for(
        secret, lambda e: e.get("state_key") == bot.user_id and e["content"].get("membership") == "join"
    )
    await alice.send(secret, "!assistant status")
    await alice.send(secret, "@assistant hello?")
    await alice.send_event(secret, "m.room.encrypted", {"algorithm": "m.megolm.v1.aes-sha2", "ciphertext": "AAAA"})

    # Kicked from a room: the bot notes it and goes on elsewhere.
    kicked = await alice.create_room(invite=[bot.user_id])
    await alice.wait_for(
        kicked, lambda e: e.get("state_key") == bot.user_id and e["content"].get("membership") == "join"
    )
    await alice.client.room_kick(kicked, bot.user_id, reason="testing")
    await wait_until(lambda: "no longer in room" in caplog.text, what="the kick to be noticed")
    asked = await bob.send(room, "@assistant still here?")
    await bob.wait_for(room, replying_to(asked))

    assert alice.from_user(secret, bot.user_id) == []
    assert caplog.text.count(f"room {secret} is end-to-end encrypted") == 1
    assert "declined invite" in caplog.text
    assert bot.cfg.allowed_inviters == [alice.user_id]


def test_inviter_allow_list() -> None:
    assert inviter_allowed("@ann:example.org", ["@ann:example.org"])
    assert inviter_allowed("@bo:example.org", ["example.org"])
    assert not inviter_allowed("@bo:evil.example.org", ["example.org"])
    assert not inviter_allowed("@ann:example.org", [])
    assert not inviter_allowed("@example.org:x", ["@example.org"])
