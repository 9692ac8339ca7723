"""Reading back what was missed: after a full restart and after a session Discord would not resume."""

from __future__ import annotations

import pytest

from bot.store import StoreError
from tests.discord.conftest import MakeBot, wait_until
from tests.discord.fake_discord import FakeDiscord

pytestmark = pytest.mark.timeout(60)


def at_bot(fake: FakeDiscord) -> str:
    return f"<@{fake.bot.id}>"


async def test_a_full_restart_reads_back_the_gap_and_answers_the_question_once(
    fake: FakeDiscord, make_bot: MakeBot
) -> None:
    first = await make_bot(p_speak=0.0, db="chime.db")
    ann, bob = fake.add_person("ann"), fake.add_person("bob")
    before = await fake.post(fake.general, ann, "see you all tomorrow")
    await first.settle()
    await first.stop()

    # Said while chime is down: Discord keeps it in the channel's history, not for a new session.
    missed = [
        await fake.post(fake.general, bob, "the venue changed to the library"),
        await fake.post(fake.general, ann, f"{at_bot(fake)} what time does the library open?", mentions=(fake.bot,)),
        await fake.post(fake.general, bob, "I think nine"),
    ]
    second = await make_bot(p_speak=0.0, db="chime.db")
    await wait_until(lambda: len(fake.sent) >= 1, 10, "the answer to the question asked while down")
    await second.settle()
    assert [r.body["message_reference"]["message_id"] for r in fake.sent] == [int(missed[1]["id"])]
    stored = [m.platform_message_id for m in await second.stored(fake.general) if not m.from_assistant]
    assert stored == [before["id"]] + [m["id"] for m in missed]
    answer = second.runtime.replies
    assert [c.window[-1].content for c in answer] == ["@assistant what time does the library open?"]
    assert fake.history_requests and all(q["channel_id"] == str(fake.general) for q in fake.history_requests)
    assert None not in (await second.outcomes(fake.general)).values()

    # Another restart reads nothing new and answers nothing again.
    await second.stop()
    third = await make_bot(p_speak=0.0, db="chime.db")
    await third.settle()
    assert len(fake.sent) == 1 and third.events == []


async def test_a_session_that_cannot_be_resumed_reads_back_what_it_missed(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot = await make_bot(p_speak=0.0)
    ann, bob = fake.add_person("ann"), fake.add_person("bob")
    await fake.post(fake.general, ann, "before the drop")
    await bot.settle()
    fake.forget_sessions()
    await fake.drop_gateway()
    # Kept only in the dead session: the new one never gets these events.
    missed = [
        await fake.post(fake.general, bob, "while the bot is away"),
        await fake.post(fake.general, bob, f"{at_bot(fake)} are you back?", mentions=(fake.bot,)),
    ]
    await wait_until(lambda: len(fake.identifies) == 2 and fake.connected, 20, "a new session")
    await wait_until(lambda: len(fake.sent) >= 1, 10, "the answer to the missed question")
    await bot.settle()
    assert [r.body["message_reference"]["message_id"] for r in fake.sent] == [int(missed[1]["id"])]
    stored = [m.text for m in await bot.stored(fake.general) if not m.from_assistant]
    assert stored == ["before the drop", "while the bot is away", "@assistant are you back?"]


async def test_forget_me_is_not_undone_by_a_restart(fake: FakeDiscord, make_bot: MakeBot) -> None:
    first = await make_bot(p_speak=0.0, db="chime.db")
    ann, bob = fake.add_person("ann"), fake.add_person("bob")
    await fake.post(fake.general, bob, "hi all")
    await fake.post(fake.general, ann, "my phone is 555-0100")
    await fake.post(fake.general, ann, "and I live at 42 Sesame Street")
    await first.settle()
    token = await fake.slash(fake.general, ann, "forget-me")
    await wait_until(lambda: any(token in r.path for r in fake.followups), 10, "the forget-me answer")
    await first.stop()

    await fake.post(fake.general, bob, f"{at_bot(fake)} still with us?", mentions=(fake.bot,))
    second = await make_bot(p_speak=0.0, db="chime.db")
    await wait_until(lambda: len(fake.sent) >= 1, 10, "the answer after the restart")
    await second.settle()
    # The read-back walked past Ann's messages (newer than the last one kept): none came back.
    texts = [m.text for m in await second.stored(fake.general)]
    assert texts == ["hi all", "@assistant still with us?", "scripted reply"]
    assert all(m.author_id != str(ann.id) for m in await second.stored(fake.general))


async def test_an_answer_sent_but_not_recorded_before_a_crash_is_not_posted_twice(
    fake: FakeDiscord, make_bot: MakeBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await make_bot(p_speak=0.0, db="chime.db")

    def crash(*args: object, **kwargs: object) -> None:
        raise StoreError("the process died between sending the answer and recording it")

    monkeypatch.setattr(first.service.store, "record_decision", crash)
    ann = fake.add_person("ann")
    asked = await fake.post(fake.general, ann, f"{at_bot(fake)} what's the date?", mentions=(fake.bot,))
    await wait_until(lambda: len(fake.sent) == 1, 10, "the first answer")
    await first.stop()

    second = await make_bot(p_speak=0.0, db="chime.db")
    await wait_until(lambda: len(fake.sent) == 2, 10, "the answer sent again at the next start")
    await second.settle()
    # Sent with the same nonce: Discord hands back the first message instead of posting another.
    from_bot = [m for m in fake.messages.values() if m["author"]["id"] == str(fake.bot.id)]
    assert len(from_bot) == 1 and {r.response["id"] for r in fake.sent} == {from_bot[0]["id"]}
    assert (await second.outcomes(fake.general))[asked["id"]] == "sent"
