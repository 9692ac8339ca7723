"""Restarts and limits: the bot restarted mid-conversation, Synapse restarted under it, M_LIMIT_EXCEEDED."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from bot.config import ConfigError
from bot.store import Store
from tests.matrix.helpers import Person, replying_to, wait_until
from tests.matrix.synapse_server import SynapseServer
from tests.matrix.test_conversation import joined_room

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


async def test_bot_restart_neither_repeats_nor_misses(alice: Person, bob: Person, make_bot) -> None:
    first = make_bot()
    await first.start()
    room, _ = await joined_room(alice, bob, first)
    encryption = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
    secret = await alice.create_room(invite=[first.user_id], initial_state=[encryption])
    await alice.wait_for(
        secret, lambda e: e.get("state_key") == first.user_id and e["content"].get("membership") == "join"
    )
    await alice.client.room_put_state(room, "m.room.power_levels", await _levels_with(alice, room, bob.user_id, 50))
    q1 = await bob.send(room, "@assistant first question")
    await bob.wait_for(room, replying_to(q1))
    before_stop = await alice.send(room, "noted")
    await wait_until(lambda: first.decided_on(before_stop), what="the decision before the restart")
    await first.stop()

    # While the bot is down, people go on talking, and one of them asks it something.
    missed = await alice.send(room, "while you were away: the venue changed")
    q2 = await bob.send(room, "@assistant did you catch that?")

    second = make_bot(user=(first.user_id, first.token))
    await second.start()
    await bob.wait_for(room, replying_to(q2))
    # Room state is known again after the restart: names, power levels, encryption.
    assert not (await second.stored(q2)).display_name.startswith("@")
    await alice.send(secret, "@assistant (encrypted room, after the restart)")
    muted = await bob.send(room, "!assistant mute")
    assert (await bob.wait_for(room, replying_to(muted)))["content"]["body"].startswith("Muted")
    await bob.send(room, "!assistant unmute")
    q3 = await alice.send(room, "@assistant and now?")
    await alice.wait_for(room, replying_to(q3))
    await bob.wait_for(room, replying_to(q3))  # bob's client syncs on its own: let it see the last reply too
    await second.service.drain()

    # Nothing from before the restart was decided again; nothing said during it was lost.
    assert not second.decided_on(q1) and not second.decided_on(before_stop)
    assert (await second.stored(missed)).text == "while you were away: the venue changed"
    replies = [e for e in bob.from_user(room, first.user_id) if e["content"]["msgtype"] == "m.text"]
    replied_to = [e["content"]["m.relates_to"]["m.in_reply_to"]["event_id"] for e in replies]
    assert sorted(replied_to) == sorted([q1, q2, q3])
    assert alice.from_user(secret, first.user_id) == []


async def test_a_command_in_a_replayed_batch_is_not_run_twice(alice: Person, bob: Person, make_bot) -> None:
    first = make_bot()
    await first.start()
    room, _ = await joined_room(alice, bob, first)
    before = await alice.send(room, "before the command")
    await wait_until(lambda: first.decided_on(before), what="the message before the command")
    token_key = f"{first.user_id}:next_batch"
    token = await first.service.db(first.service.store.get_state, "matrix", token_key)
    status = await alice.send(room, "!assistant status")
    await alice.wait_for(room, replying_to(status))
    await first.stop()

    # A crash before the sync position was saved: the next start reads the command again.
    store = Store(first.url)
    store.set_state("matrix", token_key, token)
    store.close()
    second = make_bot(user=(first.user_id, first.token))
    await second.start()
    after = await alice.send(room, "after the restart")
    await wait_until(lambda: second.decided_on(after), what="the message after the restart")
    assert status in second.adapter.handler.seen, "the command was read again"
    notices = [e for e in alice.from_user(room, first.user_id) if e["content"]["msgtype"] == "m.notice"]
    assert len(notices) == 1


async def _levels_with(person: Person, room: str, user_id: str, level: int) -> dict:
    content = (await person.client.room_get_state_event(room, "m.room.power_levels")).content
    content.setdefault("users", {})[user_id] = level
    return content


async def test_gap_while_away_is_read_back(alice: Person, bob: Person, make_bot) -> None:
    first = make_bot(timeline_limit=3)
    await first.start()
    room, _ = await joined_room(alice, bob, first)
    await first.stop()
    # More messages than one sync shows per room: the rest is fetched page by page.
    said = [await alice.send(room, f"while away {i}") for i in range(10)]
    second = make_bot(user=(first.user_id, first.token), timeline_limit=3)
    await second.start()
    await wait_until(lambda: second.decided_on(said[-1]), what="a decision on the latest message")
    assert [(await second.stored(e)).text for e in said] == [f"while away {i}" for i in range(10)]


async def test_password_login_reuses_its_device(alice: Person, bob: Person, make_bot, synapse, monkeypatch) -> None:
    user_id, _ = synapse.register("chimepw", "pw-test-123")
    monkeypatch.setenv("CHIME_TEST_MATRIX_PASSWORD", "pw-test-123")
    first = make_bot(user=(user_id, ""), access_token_env=None, password_env="CHIME_TEST_MATRIX_PASSWORD")
    await first.start()
    room, _ = await joined_room(alice, bob, first)
    asked = await bob.send(room, "@assistant logged in with a password?")
    await bob.wait_for(room, replying_to(asked))
    device = first.adapter.client.device_id
    await first.stop()
    second = make_bot(user=(user_id, ""), access_token_env=None, password_env="CHIME_TEST_MATRIX_PASSWORD")
    await second.start()
    await wait_until(lambda: second.adapter.client.device_id, what="the second login")
    assert second.adapter.client.device_id == device


async def test_a_refused_password_stops_the_adapter_with_a_clear_error(make_bot, synapse, monkeypatch) -> None:
    user_id, _ = synapse.register("chimebadpw", "the-right-one-123")
    monkeypatch.setenv("CHIME_TEST_MATRIX_PASSWORD", "a-wrong-one")
    bot = make_bot(user=(user_id, ""), access_token_env=None, password_env="CHIME_TEST_MATRIX_PASSWORD")
    await bot.start()
    with pytest.raises(ConfigError, match=r"login as @chimebadpw:\S+ failed \(M_FORBIDDEN\)"):
        await asyncio.wait_for(bot._task, 30)
    await bot.service.close()
    bot.adapter = None  # already stopped: nothing left for the fixture to close


async def test_reconnects_after_synapse_restart(
    alice: Person, bob: Person, make_bot, synapse: SynapseServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="adapters.matrix")
    # The default login backoff (up to a minute) must not hold up syncing once the server is back.
    bot = make_bot(reconnect_max_delay_s=60)
    await bot.start()
    room, _ = await joined_room(alice, bob, bot)
    before = await bob.send(room, "@assistant before the restart")
    await bob.wait_for(room, replying_to(before))

    synapse.stop()
    # A long enough outage for a doubling backoff to have grown (to 32 s after five failures).
    failures = lambda: sum("sync failed" in r.getMessage() for r in caplog.records)  # noqa: E731
    await wait_until(lambda: failures() >= 5, timeout=90, what="five failed syncs during the outage")
    # Started in a thread: the bot goes on retrying while Synapse starts, as it would in production.
    await asyncio.to_thread(synapse.start)
    back = time.monotonic()

    after = await bob.send(room, "@assistant after the restart")
    await bob.wait_for(room, replying_to(after), timeout=60)
    answered_s = time.monotonic() - back
    print(f"answered {answered_s:.1f} s after the homeserver was back")
    assert answered_s <= 5, f"answered {answered_s:.1f} s after the homeserver was back"
    assert "sync works again" in caplog.text
    assert len(bot.decided_on(before)) == 1


async def test_rate_limit_is_waited_out(
    alice: Person, bob: Person, make_bot, synapse: SynapseServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    bot = make_bot()
    # This bot may send one message a second, no burst.
    synapse.override_ratelimit(bot.user_id, per_second=1, burst_count=1)
    await bot.start()
    room, _ = await joined_room(alice, bob, bot)
    asked, commands = [], []
    for i in range(2):
        # A reply and a command's answer go out at the same moment: the second must wait.
        asked.append(await bob.send(room, f"@assistant question {i}"))
        commands.append(await bob.send(room, "!assistant status"))
    for event_id in asked + commands:
        await bob.wait_for(room, replying_to(event_id), timeout=60)
    assert "429" in caplog.text  # the homeserver said M_LIMIT_EXCEEDED, and the bot waited it out
    # The room sees a reply a moment before the bot has recorded it: wait for the records.
    await wait_until(lambda: all(bot.decided_on(e) for e in asked), what="both decisions recorded")
    assert [d.outcome for e in asked for d in bot.decided_on(e)] == ["sent"] * 2
