"""The bot in a Matrix room: silent in chit-chat, forced by every kind of mention, replies in threads."""

from __future__ import annotations

import pytest

from tests.matrix.helpers import Bot, Person, replying_to, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


async def joined_room(alice: Person, bob: Person, bot: Bot, *, before_join: list[str] = ()) -> tuple[str, list[str]]:
    """Alice's room with Bob; ``before_join`` is said before the bot is invited; waits until the bot is in."""
    room = await alice.create_room(invite=[bob.user_id])
    await bob.join(room)
    early = [await alice.send(room, text) for text in before_join]
    await alice.client.room_invite(room, bot.user_id)
    await alice.wait_for(room, lambda e: e.get("state_key") == bot.user_id and e["content"].get("membership") == "join")
    return room, early


async def test_silent_chat_then_forced_replies_in_place(alice: Person, bob: Person, make_bot) -> None:
    bot = make_bot()
    bot.runtime.delay_s = 0.3  # long enough for the typing notice to be seen
    await bot.start()
    room, (early,) = await joined_room(alice, bob, bot, before_join=["@assistant are you there? (before you joined)"])

    # People chat: every message is decided on, the bot stays silent.
    chat = []
    for person, text in [
        (alice, "shall we do the retro on thursday?"),
        (bob, "thursday works, after lunch"),
        (alice, "great, I'll book the room"),
    ]:
        chat.append(await person.send(room, text))
        # One at a time: a burst would be decided once, on its latest message.
        await wait_until(lambda: bot.decided_on(chat[-1]), what=f"a decision on {text!r}")
    assert [d.outcome for e in chat for d in bot.decided_on(e)] == ["silent"] * 3
    # The message from before the join is context, never a trigger.
    assert (await bot.stored(early)).text.startswith("@assistant are you there")
    assert not bot.decided_on(early)
    assert any("before you joined" in t.content for t in bot.runtime.calls[0].window)

    # "@assistant" in the text forces a reply: m.text, replying to the trigger, mentioning its author.
    asked = await bob.send(room, "@assistant what's the date of the retro?")
    reply = await bob.wait_for(room, replying_to(asked))
    assert reply["sender"] == bot.user_id
    assert reply["content"]["msgtype"] == "m.text"
    assert reply["content"]["body"] == "scripted reply"
    assert reply["content"]["m.mentions"] == {"user_ids": [bob.user_id]}
    assert (room, (bot.user_id,)) in bob.typing

    # An intentional mention (m.mentions), a pill in the HTML, and a reply to the bot force too.
    mentioned = await alice.send(room, "bot, thoughts?", **{"m.mentions": {"user_ids": [bot.user_id]}})
    await alice.wait_for(room, replying_to(mentioned))
    pill = f'<a href="https://matrix.to/#/{bot.user_id}">chime</a> and you?'
    pilled = await alice.send(room, "chime and you?", format="org.matrix.custom.html", formatted_body=pill)
    await alice.wait_for(room, replying_to(pilled))
    answer = await bob.send(
        room,
        "> <bot> scripted reply\n\nthanks!",
        **{"m.relates_to": {"m.in_reply_to": {"event_id": reply["event_id"]}}},
    )
    await bob.wait_for(room, replying_to(answer))
    assert (await bot.stored(answer)).text == "thanks!"  # the reply fallback is not part of the text

    # In a thread, the reply stays in the thread.
    root = await alice.send(room, "thread: who brings snacks?")
    in_thread = await bob.send(
        room, "@assistant any ideas?", **{"m.relates_to": {"rel_type": "m.thread", "event_id": root}}
    )
    threaded = await bob.wait_for(room, replying_to(in_thread))
    assert threaded["content"]["m.relates_to"]["rel_type"] == "m.thread"
    assert threaded["content"]["m.relates_to"]["event_id"] == root

    # One reply per forced message, none for the rest.
    await bot.service.drain()
    triggers = {asked, mentioned, pilled, answer, in_thread}
    replied_to = [e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] for e in bob.from_user(room, bot.user_id)]
    assert sorted(replied_to) == sorted(triggers)
    assert all(d.decision.forced for e in triggers for d in bot.decided_on(e))


async def test_a_streamed_reply_ends_as_one_message_with_the_whole_text(alice: Person, bob: Person, make_bot) -> None:
    text = " ".join(f"word{i}" for i in range(1, 21))
    bot = make_bot()
    bot.runtime.reply_text = text
    bot.runtime.word_delay_s = 0.15  # a slow responder: three seconds for the whole reply
    await bot.start()
    room, _ = await joined_room(alice, bob, bot)
    asked = await alice.send(room, "@assistant tell me a story")
    first = await alice.wait_for(room, replying_to(asked))
    assert first["content"]["body"] == "word1"  # posted at the first words

    def edits() -> list[dict]:
        return [
            e
            for e in alice.from_user(room, bot.user_id)
            if e["content"].get("m.relates_to", {}).get("rel_type") == "m.replace"
        ]

    await wait_until(lambda: edits() and edits()[-1]["content"]["m.new_content"]["body"] == text, what="the last edit")
    await wait_until(lambda: bot.decided_on(asked), what="the decision to be recorded")
    # One reply, edited in place (m.replace, at most one edit per 1.5 s) until it holds the whole text.
    assert len([e for e in alice.from_user(room, bot.user_id) if replying_to(asked)(e)]) == 1
    assert 1 <= len(edits()) <= 3
    assert {e["content"]["m.relates_to"]["event_id"] for e in edits()} == {first["event_id"]}
    assert all(e["content"]["m.mentions"] == {} for e in edits())  # an edit pings nobody again
    assert (await bot.stored(first["event_id"])).text == text
    assert [d.outcome for d in bot.decided_on(asked)] == ["sent"]
