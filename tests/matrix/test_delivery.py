"""Delivery on a real Synapse: quick questions, a stop with a question waiting, forget-me across a gap, quoted mentions."""

from __future__ import annotations

import pytest

from bot.store import Store, StoreError
from tests.matrix.helpers import Bot, Person, replying_to, wait_until
from tests.matrix.test_conversation import joined_room

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]


def replies_of(person: Person, room: str, bot: Bot) -> list[str]:
    """The events the bot's m.text replies answer, as ``person`` saw them."""
    return [
        e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"]
        for e in person.from_user(room, bot.user_id)
        if e["content"].get("msgtype") == "m.text"
    ]


async def test_two_quick_questions_are_both_answered_each_to_its_own(alice: Person, bob: Person, make_bot) -> None:
    bot = make_bot()
    bot.runtime.delay_s = 0.2
    await bot.start()
    room, _ = await joined_room(alice, bob, bot)
    q1 = await alice.send(room, "@assistant what is 12 times 12?")
    q2 = await bob.send(room, "@assistant what is the boiling point of water?")
    await alice.wait_for(room, replying_to(q1))
    await alice.wait_for(room, replying_to(q2))
    await bot.service.drain()
    assert sorted(replies_of(alice, room, bot)) == sorted([q1, q2])
    asked = [c.window[-1].content for c in bot.runtime.replies]
    assert sorted(asked) == sorted(
        ["@assistant what is 12 times 12?", "@assistant what is the boiling point of water?"]
    )


async def test_a_question_waiting_at_a_stop_is_answered_once_after_the_restart(
    alice: Person, bob: Person, make_bot
) -> None:
    first = make_bot()
    first.runtime.delay_s = 1.0
    await first.start()
    room, _ = await joined_room(alice, bob, first)
    q1 = await alice.send(room, "@assistant first question")
    await wait_until(lambda: first.runtime.calls, what="the first decision to start")
    q2 = await bob.send(room, "@assistant second question")
    await wait_until(lambda: first.service.scheduler.waiting(), what="the second question to wait")
    # What chime run does on SIGTERM: finish the running decision, then close.
    await first.service.finish()
    await first.stop()
    assert _outcome(first, q2) is None

    second = make_bot(user=(first.user_id, first.token))
    await second.start()
    await alice.wait_for(room, replying_to(q2))
    await second.service.drain()
    assert sorted(replies_of(alice, room, first)) == sorted([q1, q2])
    assert [c.window[-1].content for c in second.runtime.scored] == ["@assistant second question"]


async def test_forget_me_stays_forgotten_across_a_restart_with_a_gap(alice: Person, bob: Person, make_bot) -> None:
    first = make_bot(timeline_limit=3)
    await first.start()
    room, _ = await joined_room(alice, bob, first)
    await alice.send(room, "what's everyone's address for the invitations?")
    # Bob's are the newest stored messages: a read-back of the gap walks back to them.
    private = [
        await bob.send(room, "my address is 42 Sesame Street"),
        await bob.send(room, "and my phone is 555-0100"),
    ]
    await wait_until(lambda: first.decided_on(private[-1]), what="a decision on the last message")
    command = await bob.send(room, "!assistant forget-me")
    notice = await bob.wait_for(room, replying_to(command))
    assert notice["content"]["body"].endswith("2 messages.")
    await first.stop()

    # A gap longer than one sync shows: the bot reads it back page by page, past the forgotten events.
    said = [await alice.send(room, f"while away {i}") for i in range(8)]
    second = make_bot(user=(first.user_id, first.token), timeline_limit=3)
    await second.start()
    await wait_until(lambda: second.decided_on(said[-1]), what="a decision on the latest message")
    await second.service.drain()
    assert [await second.stored(e) for e in private] == [None, None]
    assert [(await second.stored(e)).text for e in said] == [f"while away {i}" for i in range(8)]
    assert not any(second.decided_on(e) for e in private)
    assert not any("Sesame" in t.content or "555-0100" in t.content for c in second.runtime.calls for t in c.window)
    notices = [e for e in bob.from_user(room, first.user_id) if e["content"]["msgtype"] == "m.notice"]
    assert len(notices) == 1, "the command was not run again"


async def test_a_message_the_store_refused_is_synced_again_not_skipped(
    alice: Person, bob: Person, make_bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    bot = make_bot()
    await bot.start()
    room, _ = await joined_room(alice, bob, bot)
    store = bot.service.store
    real_add = store.add_message
    refused: list[str] = []

    def locked_once(msg, **kwargs):  # noqa: ANN001, ANN202
        if "refused" in msg.text and not refused:
            refused.append(msg.message_id)
            raise StoreError("store: add_message failed after 3 attempts: database is locked")
        return real_add(msg, **kwargs)

    monkeypatch.setattr(store, "add_message", locked_once)
    asked = await alice.send(room, "@assistant first refused, then stored?")
    await alice.wait_for(room, replying_to(asked), timeout=30)
    await bot.service.drain()
    assert refused == [asked], "the sync position did not move past the refused event"
    assert replies_of(alice, room, bot) == [asked]


async def test_replying_to_a_message_that_mentioned_the_bot_does_not_force(
    alice: Person, bob: Person, make_bot
) -> None:
    bot = make_bot()
    await bot.start()
    room, _ = await joined_room(alice, bob, bot)
    pill = f'<a href="https://matrix.to/#/{bot.user_id}">chime</a>'
    asked = await alice.send(
        room,
        "chime: what is 12 times 12?",
        format="org.matrix.custom.html",
        formatted_body=f"{pill}: what is 12 times 12?",
    )
    await alice.wait_for(room, replying_to(asked))
    # Bob answers Alice himself, with the reply fallback Element writes (quoting her pill).
    fallback = (
        f'<mx-reply><blockquote><a href="https://matrix.to/#/{room}/{asked}">In reply to</a> '
        f'<a href="https://matrix.to/#/{alice.user_id}">{alice.user_id}</a><br>{pill}: what is 12 times 12?'
        "</blockquote></mx-reply>144, easy"
    )
    answer = await bob.send(
        room,
        f"> <{alice.user_id}> chime: what is 12 times 12?\n\n144, easy",
        format="org.matrix.custom.html",
        formatted_body=fallback,
        **{"m.relates_to": {"m.in_reply_to": {"event_id": asked}}, "m.mentions": {"user_ids": [alice.user_id]}},
    )
    await wait_until(lambda: bot.decided_on(answer), what="a decision on Bob's reply")
    [decision] = bot.decided_on(answer)
    assert decision.decision.forced is False and decision.outcome == "silent"
    assert replies_of(alice, room, bot) == [asked]


def _outcome(bot: Bot, event_id: str) -> str | None:
    """The recorded outcome of a stored event, read from the bot's database after it stopped."""
    store = Store(bot.url)
    try:
        return store.get_message("matrix", event_id).outcome
    finally:
        store.close()
