"""The Discord adapter end to end: the real discord.py client against the fake Discord on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tests.discord.conftest import TOKEN_ENV, Bot, MakeBot, wait_until
from tests.discord.fake_discord import MANAGE_GUILD, FakeDiscord, Request

pytestmark = pytest.mark.timeout(60)


def at_bot(fake: FakeDiscord) -> str:
    """How Discord writes a mention of the bot."""
    return f"<@{fake.bot.id}>"


def path_of(channel_id: int) -> str:
    return f"/channels/{channel_id}/messages"


async def reply_sent(fake: FakeDiscord, n: int = 1) -> list[Request]:
    """Wait until the bot posted ``n`` messages."""
    await wait_until(lambda: len(fake.sent) >= n, 10, f"{n} messages from the bot")
    return fake.sent


async def answer_to(fake: FakeDiscord, token: str) -> dict:
    """The ephemeral answer to the interaction with ``token``: a follow-up, or the callback's own message."""

    def answer() -> dict | None:
        followup = next((r.body for r in fake.followups if token in r.path), None)
        callback = next((r.body for r in fake.callbacks if token in r.path and r.body["type"] == 4), None)
        return followup or (callback and callback["data"])

    await wait_until(answer, 10, "the slash-command answer")
    return answer()


async def test_members_chat_and_the_bot_stays_silent(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot = await make_bot(p_speak=0.1)
    ann = fake.add_person("ann", nick="Ann")
    bob = fake.add_person("bob", global_name="Bob")
    lines = [(ann, "anyone up for lunch?"), (bob, "sure, noon at the usual place?"), (ann, "noon works")]
    for who, text in lines:
        await fake.post(fake.general, who, text)
        await bot.settle()
    stored = await bot.stored(fake.general)
    assert [(m.display_name, m.text) for m in stored] == [
        ("Ann", lines[0][1]),
        ("Bob", lines[1][1]),
        ("Ann", lines[2][1]),
    ]
    assert [e.outcome for e in bot.events] == ["silent"] * 3
    assert fake.sent == [] and fake.typing == []


async def test_mention_forces_a_discord_reply_that_pings_nobody_else(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bob = fake.add_person("bob")
    bot = await make_bot(p_speak=0.0, reply=f"@everyone, <@&{fake.everyone_role}> and <@{bob.id}>: it's the 14th.")
    ann = fake.add_person("ann", nick="Ann")
    fake.answer_delay_s = 0.3  # the gateway echo of the reply arrives well before the POST's answer
    trigger = await fake.post(fake.general, ann, f"{at_bot(fake)} what's the date?", mentions=(fake.bot,))
    (sent,) = await reply_sent(fake)
    assert sent.path == path_of(fake.general)
    assert sent.body["message_reference"]["message_id"] == int(trigger["id"])
    # Only the author who called the bot may be pinged; never @everyone, roles or users in the text.
    assert sent.body["allowed_mentions"] == {"parse": [], "replied_user": True}
    assert fake.typing and fake.requests.index(fake.typing[0]) < fake.requests.index(sent)
    await bot.settle()
    # Discord echoes the bot's own message on the gateway: it is not stored twice nor decided on.
    stored = await bot.stored(fake.general)
    assert [(m.from_assistant, m.platform_message_id) for m in stored] == [
        (False, trigger["id"]),
        (True, sent.response["id"]),
    ]
    assert [(e.outcome, e.decision.forced) for e in bot.events] == [("sent", True)]


async def test_reply_to_the_bot_forces_a_reply(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot = await make_bot(p_speak=0.0)
    ann, bob = fake.add_person("ann"), fake.add_person("bob")
    await fake.post(fake.general, ann, f"{at_bot(fake)} hi", mentions=(fake.bot,))
    (first,) = await reply_sent(fake)
    await bot.settle()
    other = await fake.post(fake.general, bob, "a reply to Ann, not to the bot", reply_to=int(first.response["id"]) - 1)
    await bot.settle()
    assert len(fake.sent) == 1
    answer = await fake.post(fake.general, bob, "thanks, and which year?", reply_to=int(first.response["id"]))
    second = (await reply_sent(fake, 2))[1]
    assert second.body["message_reference"]["message_id"] == int(answer["id"])
    await bot.settle()
    assert [e.outcome for e in bot.events] == ["sent", "silent", "sent"]
    assert [m.platform_message_id for m in await bot.stored(fake.general)][-3:-1] == [other["id"], answer["id"]]


@pytest.mark.parametrize(
    ("text", "forced"),
    [
        ("```\nconfig: <@BOT> is the bot\n```", False),
        ("inline `<@BOT>` in code", False),
        ("hey @assistant, how many days in June?", True),
        ("did `@assistant` break?", False),
        ("<@&BOTROLE> ping the bot's own role", True),
    ],
)
async def test_what_counts_as_addressing_the_bot(fake: FakeDiscord, make_bot: MakeBot, text: str, forced: bool) -> None:
    bot = await make_bot(p_speak=0.0)
    ann = fake.add_person("ann")
    text = text.replace("BOTROLE", str(fake.bot_role)).replace("BOT", str(fake.bot.id))
    await fake.post(fake.general, ann, text, mentions=(fake.bot,) if str(fake.bot.id) in text else ())
    (event,) = await bot.decisions(1)
    assert event.decision.forced is forced
    assert event.outcome == ("sent" if forced else "silent")


async def test_learn_a_file_given_to_the_slash_command(fake: FakeDiscord, make_bot: MakeBot) -> None:
    mods = fake.add_role(7654321, "mods")
    bot = await make_bot(p_speak=0.0, admin_role=mods)
    ann, mod = fake.add_person("ann"), fake.add_person("mo", roles=(mods,))
    handbook = ("handbook.md", b"## Keys\n\nThe key box code is 9314.\n")

    token = await fake.slash(fake.general, ann, "learn", files={"file": handbook})
    assert (await answer_to(fake, token))["content"].startswith("Sorry, only channel admins")
    assert fake.downloads == []  # a non-admin's file is never fetched
    token = await fake.slash(fake.general, mod, "learn", files={"file": handbook})
    assert (await answer_to(fake, token))["content"].startswith("Learnt handbook.md (1 passages)")
    assert len(fake.downloads) == 1
    token = await fake.slash(fake.general, ann, "documents")
    assert (await answer_to(fake, token))["content"].startswith("handbook.md: 1 passages, added by")

    await fake.post(fake.general, ann, f"{at_bot(fake)} what was the code of our key box?", mentions=(fake.bot,))
    await wait_until(lambda: fake.sent, 10, "the answer")
    assert "9314" in fake.sent[0].body["content"] and "[handbook.md]" in fake.sent[0].body["content"]
    token = await fake.slash(fake.general, mod, "unlearn", {"name": "handbook.md"})
    assert (await answer_to(fake, token))["content"] == "Forgot the document handbook.md."
    assert bot.events[-1].outcome == "sent"


async def test_slash_commands_work_and_refuse_non_admins(fake: FakeDiscord, make_bot: MakeBot) -> None:
    mods = fake.add_role(1234567, "mods")
    bot = await make_bot(p_speak=0.0, admin_role=mods)
    (group,) = fake.commands
    assert group["name"] == "assistant"
    assert {o["name"] for o in group["options"]} == {
        "status",
        "mute",
        "unmute",
        "talkativeness",
        "history",
        "why",
        "forget",
        "forget-me",
        "learn",
        "unlearn",
        "documents",
        "help",
    }
    owner, ann, mod = fake.add_person("owner"), fake.add_person("ann"), fake.add_person("mo", roles=(mods,))

    token = await fake.slash(fake.general, owner, "mute", permissions=MANAGE_GUILD)
    assert (await answer_to(fake, token))["content"].startswith("Muted")
    callback = next(r for r in fake.callbacks if token in r.path)
    assert callback.body == {"type": 5, "data": {"flags": 64}}  # deferred, ephemeral
    assert all(r.body["flags"] == 64 for r in fake.followups)  # every answer is ephemeral

    await fake.post(fake.general, ann, f"{at_bot(fake)} are you there?", mentions=(fake.bot,))
    await bot.settle()
    assert fake.sent == [] and bot.events == []  # muted: stored, not decided

    token = await fake.slash(fake.general, ann, "unmute")
    assert (await answer_to(fake, token))["content"].startswith("Sorry, only channel admins")
    token = await fake.slash(fake.general, ann, "status")
    assert (await answer_to(fake, token))["content"].startswith(f"muted in discord:{fake.general}")
    token = await fake.slash(fake.general, mod, "talkativeness", {"level": 80})
    assert (await answer_to(fake, token))["content"].startswith("Talkativeness set to 80")
    token = await fake.slash(fake.general, mod, "unmute")
    assert (await answer_to(fake, token))["content"].startswith("Unmuted")
    token = await fake.slash(fake.general, ann, "forget-me")
    assert (await answer_to(fake, token))["content"] == "Deleted everything I stored from you on discord: 1 messages."
    assert await bot.stored(fake.general) == []

    token = await fake.slash(fake.general, ann, "history", {"messages": 10})
    assert (await answer_to(fake, token))["content"].startswith("Sorry, only channel admins")
    token = await fake.slash(fake.general, mod, "history", {"messages": 10})
    assert (await answer_to(fake, token))["content"].startswith("I'll read the last 10")
    await fake.post(fake.general, owner, "something to forget")
    # One settle (0.2 s, then the decisions) was once too short in CI for the event to
    # reach the core: wait for its decision (made after it is stored), then settle.
    await wait_until(lambda: bot.events, 10, "a decision on the posted message")
    await bot.settle()
    assert len(await bot.stored(fake.general)) == 1
    token = await fake.slash(fake.general, ann, "forget")
    assert (await answer_to(fake, token))["content"].startswith("Sorry, only channel admins")
    token = await fake.slash(fake.general, owner, "forget", permissions=MANAGE_GUILD)
    assert (await answer_to(fake, token))["content"].startswith("Forgot this channel's history")
    assert await bot.stored(fake.general) == []


async def test_gateway_drop_mid_conversation_resumes_without_losing_a_message(
    fake: FakeDiscord, make_bot: MakeBot
) -> None:
    bot = await make_bot(p_speak=0.0)
    ann, bob = fake.add_person("ann"), fake.add_person("bob")
    posted = [await fake.post(fake.general, ann, "one"), await fake.post(fake.general, bob, "two")]
    await bot.settle()
    await fake.drop_gateway()
    # Said while the bot is disconnected: Discord keeps them for the session.
    posted.append(await fake.post(fake.general, ann, "three"))
    posted.append(await fake.post(fake.general, bob, f"{at_bot(fake)} four?", mentions=(fake.bot,)))
    await wait_until(lambda: fake.resumes and fake.connected, 15, "the client to resume")
    (sent,) = await reply_sent(fake)
    posted.append(await fake.post(fake.general, ann, "five"))
    await bot.settle()
    await wait_until(lambda: len(bot.events) >= 2, 5, "a decision on the message after the resume")
    stored = [m.platform_message_id for m in await bot.stored(fake.general) if not m.from_assistant]
    assert stored == [m["id"] for m in posted]
    assert len(fake.identifies) == 1 and len(fake.resumes) == 1
    assert sent.body["message_reference"]["message_id"] == int(posted[3]["id"])


async def test_an_unresumable_session_identifies_again_on_the_same_server(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot = await make_bot(p_speak=0.0)
    ann = fake.add_person("ann")
    fake.forget_sessions()
    await fake.drop_gateway()
    await wait_until(lambda: len(fake.identifies) == 2 and fake.connected, 20, "a new session")
    await fake.post(fake.general, ann, f"{at_bot(fake)} back?", mentions=(fake.bot,))
    await reply_sent(fake)
    assert [e.outcome for e in await bot.decisions(1)] == ["sent"]


async def test_the_adapter_connects_again_after_the_client_stopped(
    fake: FakeDiscord, make_bot: MakeBot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("adapters.discord.adapter.RETRY_FIRST_S", 0.2)
    bot = await make_bot(p_speak=0.0)
    await fake.close_gateway(4010)  # a close code discord.py gives up on
    await wait_until(lambda: len(fake.identifies) == 2 and fake.connected, 10, "a new client")
    assert any("connection lost" in r.getMessage() for r in caplog.records)
    ann = fake.add_person("ann")
    await wait_until(lambda: bot.adapter.client.get_guild(fake.guild_id), 5, "the guild")
    await fake.post(fake.general, ann, f"{at_bot(fake)} still there?", mentions=(fake.bot,))
    await reply_sent(fake)


async def test_a_429_on_send_is_waited_out_and_retried(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot = await make_bot(p_speak=0.0)
    fake.fail_next("POST", path_of(fake.general), 429, retry_after=0.5)
    ann = fake.add_person("ann")
    await fake.post(fake.general, ann, f"{at_bot(fake)} hello", mentions=(fake.bot,))
    await reply_sent(fake)
    await bot.settle()
    attempts = fake.calls("POST", path_of(fake.general))
    assert [r.status for r in attempts] == [429, 200]
    assert [e.outcome for e in bot.events] == ["sent"]


async def test_a_slow_reply_in_one_channel_does_not_delay_another(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot = await make_bot(p_speak=0.0)
    fake.fail_next("POST", path_of(fake.general), 429, retry_after=2.0)
    ann = fake.add_person("ann")
    await fake.post(fake.general, ann, f"{at_bot(fake)} first", mentions=(fake.bot,))
    await wait_until(lambda: fake.calls("POST", path_of(fake.general)), 5, "the rate-limited send")
    started = time.monotonic()
    await fake.post(fake.random, ann, f"{at_bot(fake)} second", mentions=(fake.bot,))
    await reply_sent(fake)
    assert fake.sent[0].path == path_of(fake.random) and time.monotonic() - started < 1.5
    await reply_sent(fake, 2)
    assert fake.sent[1].path == path_of(fake.general)
    await bot.settle()


async def test_a_reply_that_finally_fails_is_logged(
    fake: FakeDiscord, make_bot: MakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(p_speak=0.0)
    fake.fail_next("POST", path_of(fake.general), 429, retry_after=0.05, times=5)
    ann = fake.add_person("ann")
    with caplog.at_level(logging.WARNING, logger="adapters.discord"):
        trigger = await fake.post(fake.general, ann, f"{at_bot(fake)} hello", mentions=(fake.bot,))
        (event,) = await bot.decisions(1)
    assert event.outcome == "send_failed"
    (line,) = [r for r in caplog.records if r.name.startswith("adapters.discord")]
    assert line.levelno == logging.ERROR and trigger["id"] in line.getMessage() and "429" in line.getMessage()


async def test_missing_permission_and_deleted_channel_are_logged_once_per_channel(
    fake: FakeDiscord, make_bot: MakeBot, caplog: pytest.LogCaptureFixture
) -> None:
    bot = await make_bot(p_speak=0.0)
    fake.forbidden_channels.add(fake.general)
    fake.deleted_channels.add(fake.random)
    ann = fake.add_person("ann")
    with caplog.at_level(logging.DEBUG, logger="adapters.discord"):
        for i in range(3):
            for channel in (fake.general, fake.random):
                await fake.post(channel, ann, f"{at_bot(fake)} try {i}", mentions=(fake.bot,))
            await bot.settle()
    assert [e.outcome for e in bot.events] == ["send_failed"] * 6
    warnings = [r.getMessage() for r in caplog.records if r.name.startswith("adapters.discord") and r.levelno >= 30]
    assert len(warnings) == 2
    assert any("403" in w and str(fake.general) in w for w in warnings)
    assert any("404" in w and str(fake.random) in w for w in warnings)
    # The bot keeps working where it can speak.
    await fake.post(fake.thread, ann, f"{at_bot(fake)} and here?", mentions=(fake.bot,))
    (sent,) = await reply_sent(fake)
    assert sent.path == path_of(fake.thread)


async def test_a_dm_gets_an_answer(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot = await make_bot(p_speak=0.0)
    ann = fake.add_person("ann", global_name="Ann")
    dm = fake.add_dm(ann)
    trigger = await fake.post(dm, ann, "what's the capital of Australia?")
    (sent,) = await reply_sent(fake)
    assert sent.path == path_of(dm) and sent.body["message_reference"]["message_id"] == int(trigger["id"])
    await bot.settle()
    assert [(e.outcome, e.decision.forced) for e in bot.events] == [("sent", True)]
    assert [m.display_name for m in await bot.stored(dm)] == ["Ann", "assistant"]
    # In a DM its one person steers the bot.
    token = await fake.slash(dm, ann, "mute")
    assert (await answer_to(fake, token))["content"].startswith("Muted")


async def test_dms_are_ignored_when_turned_off(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot = await make_bot(p_speak=0.0, respond_to_dms=False)
    ann = fake.add_person("ann")
    dm = fake.add_dm(ann)
    await fake.post(dm, ann, "hello?")
    await bot.settle()
    assert await bot.stored(dm) == [] and fake.sent == []


async def test_threads_are_channels_of_their_own(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot = await make_bot(p_speak=0.0)
    ann = fake.add_person("ann")
    await fake.post(fake.thread, ann, f"{at_bot(fake)} in a thread", mentions=(fake.bot,))
    (sent,) = await reply_sent(fake)
    assert sent.path == path_of(fake.thread)
    await bot.settle()
    (event,) = bot.events
    assert event.channel.channel_id == str(fake.thread) and event.channel.name == "Test Guild #general > plans"


async def test_attachments_embeds_and_stickers_are_stored_as_placeholders(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot = await make_bot(p_speak=0.1)
    ann = fake.add_person("ann")
    image = {
        "id": "1",
        "filename": "cat.png",
        "size": 10,
        "url": "https://cdn.invalid/cat.png",
        "proxy_url": "https://cdn.invalid/cat.png",
        "content_type": "image/png",
    }
    await fake.post(fake.general, ann, "", attachments=[image])
    await fake.post(fake.general, ann, "look", attachments=[image | {"filename": "notes.txt", "content_type": None}])
    await fake.post(fake.general, ann, "", sticker_items=[{"id": "2", "name": "wave", "format_type": 1}])
    await fake.post(fake.general, ann, "", embeds=[{"type": "rich", "title": "Release notes"}])
    await bot.settle()
    texts = [m.text for m in await bot.stored(fake.general)]
    assert texts == ["[image: cat.png]", "look\n[file: notes.txt]", "[sticker: wave]", "[embed: Release notes]"]
    assert bot.events and all(e.outcome == "silent" for e in bot.events)


async def test_huge_messages_in_and_out(fake: FakeDiscord, make_bot: MakeBot) -> None:
    paragraphs = [f"Point {i}: " + "word " * 60 for i in range(20)]  # about 6,300 characters
    bot = await make_bot(p_speak=0.0, reply="\n".join(paragraphs))
    ann = fake.add_person("ann")
    huge = await fake.post(fake.general, ann, f"{at_bot(fake)} " + "x" * 3990, mentions=(fake.bot,))
    await reply_sent(fake, 4)
    await bot.settle()
    sent = fake.sent
    assert len(sent) == 4 and all(len(r.body["content"]) <= 2000 for r in sent)
    assert sent[0].body["message_reference"]["message_id"] == int(huge["id"])
    assert all("message_reference" not in r.body for r in sent[1:])
    assert all(r.body["content"].startswith("Point") for r in sent)  # split at line boundaries
    assert " ".join(r.body["content"] for r in sent).split() == "\n".join(paragraphs).split()
    stored = await bot.stored(fake.general)
    assert stored[0].text == "@assistant " + "x" * 3990 and stored[1].platform_message_id == sent[0].response["id"]


async def test_display_names_that_imitate_another_member_or_the_bot_are_tagged(
    fake: FakeDiscord, make_bot: MakeBot
) -> None:
    bot = await make_bot(p_speak=0.1)
    ann = fake.add_person("ann", nick="Ann")
    fake_ann = fake.add_person("mallory", nick="ＡＮＮ")  # full-width letters, other case
    fake_bot = fake.add_person("eve", nick="Chime")
    for who in (ann, fake_ann, fake_bot, ann):
        await fake.post(fake.general, who, "hi")
        await bot.settle()
    names = [m.display_name for m in await bot.stored(fake.general)]
    assert names == ["Ann", f"ＡＮＮ ({str(fake_ann.id)[-4:]})", f"Chime ({str(fake_bot.id)[-4:]})", "Ann"]
    # The window the model reads keeps them apart too.
    window = bot.runtime.calls[-1].window
    assert len({t.name for t in window if t.role == "user"}) == 3


async def test_mentioning_a_member_nicknamed_like_the_bot_does_not_address_the_bot(
    fake: FakeDiscord, make_bot: MakeBot
) -> None:
    bot = await make_bot(p_speak=0.0)
    ann = fake.add_person("ann", nick="Ann")
    eve = fake.add_person("eve", nick="assistant")
    await fake.post(fake.general, ann, f"thanks <@{eve.id}>!", mentions=(eve,))
    (event,) = await bot.decisions(1)
    assert event.decision.forced is False and event.outcome == "silent"
    [stored] = await bot.stored(fake.general)
    assert stored.text == f"thanks @assistant_{str(eve.id)[-4:]}!"


async def test_edits_and_deletions_reach_the_store(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot = await make_bot(p_speak=0.1)
    ann = fake.add_person("ann")
    first = await fake.post(fake.general, ann, "the meeting is at 3")
    second = await fake.post(fake.general, ann, "bring snacks")
    await bot.settle()
    await fake.edit(int(first["id"]), "the meeting is at 4")
    await fake.delete(int(second["id"]))
    await wait_until(lambda: len(bot.runtime.forgotten) == 1, 5, "the deletion to reach the core")
    await bot.settle()
    assert [m.text for m in await bot.stored(fake.general)] == ["the meeting is at 4"]


async def test_a_bulk_deletion_removes_every_purged_message(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot = await make_bot(p_speak=0.1)
    ann, ben = fake.add_person("ann"), fake.add_person("ben")
    posted = [
        await fake.post(fake.general, who, text) for who, text in [(ann, "spam 1"), (ben, "keep me"), (ann, "spam 2")]
    ]
    await bot.settle()
    await fake.bulk_delete(fake.general, [int(posted[0]["id"]), int(posted[2]["id"])])
    await wait_until(lambda: len(bot.runtime.forgotten) >= 1, 5, "the bulk deletion to reach the core")
    await bot.settle()
    assert [m.text for m in await bot.stored(fake.general)] == ["keep me"]


async def test_other_bots_are_stored_but_not_decided_on_or_not_read(fake: FakeDiscord, make_bot: MakeBot) -> None:
    other = fake.add_person("helper-bot", bot=True)
    bot = await make_bot(p_speak=1.0)
    await fake.post(fake.general, other, f"{at_bot(fake)} beep", mentions=(fake.bot,))
    await bot.settle()
    assert [(m.is_bot, m.text) for m in await bot.stored(fake.general)] == [(True, "@assistant beep")]
    assert bot.events == [] and fake.sent == []


async def test_other_bots_can_be_left_unread(fake: FakeDiscord, make_bot: MakeBot) -> None:
    other = fake.add_person("helper-bot", bot=True)
    bot = await make_bot(p_speak=1.0, read_other_bots=False)
    await fake.post(fake.general, other, "beep")
    await bot.settle()
    assert await bot.stored(fake.general) == []


async def test_allow_and_deny_lists(fake: FakeDiscord, make_bot: MakeBot) -> None:
    members = fake.add_role(7654321, "members")
    ann, bob, cy = (
        fake.add_person("ann", roles=(members,)),
        fake.add_person("bob", roles=(members,)),
        fake.add_person("cy"),
    )
    bot = await make_bot(p_speak=0.0, allowed_roles=[members], denied_users=[bob.id], denied_channels=[fake.general])
    for who in (ann, bob, cy):
        await fake.post(fake.random, who, f"{who.username} here")
        await fake.post(fake.thread, who, "in a thread of a denied channel")
    await bot.settle()
    assert [m.text for m in await bot.stored(fake.random)] == ["ann here"]
    assert await bot.stored(fake.thread) == []
    token = await fake.slash(fake.thread, ann, "status")
    answer = await answer_to(fake, token)
    assert (answer["content"], answer["flags"]) == ("I'm not active in this channel.", 64)


async def test_a_message_in_an_unknown_channel_is_handled(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot = await make_bot(p_speak=0.0)
    late = fake.add_channel("created-later")  # not in the guild the client received
    ann = fake.add_person("ann")
    await fake.post(late, ann, f"{at_bot(fake)} new channel", mentions=(fake.bot,))
    (sent,) = await reply_sent(fake)
    assert sent.path == path_of(late)
    await bot.settle()
    assert len(await bot.stored(late)) == 2


async def test_close_stops_the_adapter(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot: Bot = await make_bot()
    await bot.adapter.close()
    await wait_until(bot.task.done, 10, "run() to return")
    assert bot.task.exception() is None and not fake.connected


async def test_a_bad_token_stops_with_a_clear_error(
    fake: FakeDiscord, make_bot: MakeBot, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(TOKEN_ENV, "not-the-token")
    bot = await make_bot(wait=False)
    await asyncio.wait_for(bot.task, 10)
    (line,) = [r.getMessage() for r in caplog.records if r.name.startswith("adapters.discord")]
    assert "cannot connect" in line and "Improper token" in line
    assert "not-the-token" not in caplog.text and fake.identifies == []


async def test_a_burst_reaches_the_store_in_gateway_order(fake: FakeDiscord, make_bot: MakeBot) -> None:
    bot = await make_bot(p_speak=0.1)
    ann = fake.add_person("ann")
    await fake.post(fake.general, ann, "first")
    await bot.settle()
    posted = []
    for i in range(6):  # newcomers' names need a store lookup, Ann's is known: no message may overtake another
        posted.append(await fake.post(fake.general, fake.add_person(f"newcomer{i}"), f"hello {i}"))
        posted.append(await fake.post(fake.general, ann, f"welcome {i}"))
    await fake.edit(int(posted[-1]["id"]), "welcome all")
    for _ in range(100):
        stored = await bot.stored(fake.general)
        if stored[-1].text == "welcome all":
            break
        await asyncio.sleep(0.05)
    assert [m.platform_message_id for m in stored[1:]] == [m["id"] for m in posted]
    assert stored[-1].text == "welcome all"


async def test_a_streamed_reply_is_posted_early_and_edited_to_the_whole_text(
    fake: FakeDiscord, make_bot: MakeBot
) -> None:
    text = " ".join(f"word{i}" for i in range(1, 21))
    bot = await make_bot(p_speak=0.0, reply=text)
    bot.runtime.word_delay_s = 0.15  # a slow responder: three seconds for the whole reply
    ann = fake.add_person("ann")
    await fake.post(fake.general, ann, f"{at_bot(fake)} tell me a story", mentions=(fake.bot,))
    (first,) = await reply_sent(fake)
    assert first.body["content"] == "word1"  # posted at the first words
    await bot.settle()
    # One message, edited in place (at most one edit per 1.5 s) until it holds the whole reply.
    assert len(fake.sent) == 1
    edits = fake.edits
    assert 1 <= len(edits) <= 3 and {e.path for e in edits} == {f"{path_of(fake.general)}/{first.response['id']}"}
    assert edits[-1].body["content"] == text and fake.messages[int(first.response["id"])]["content"] == text
    assert all(e.body["allowed_mentions"] == {"parse": []} for e in edits)  # an edit pings nobody
    stored = await bot.stored(fake.general)
    assert (stored[-1].from_assistant, stored[-1].text) == (True, text)
    assert [e.outcome for e in bot.events] == ["sent"]
