"""Feedback from a Discord channel: a 👎 (MESSAGE_REACTION_ADD) on an unasked reply labels it; /assistant why shows it."""

from __future__ import annotations

import pytest

from bot.domain import ChannelRef
from tests.discord.conftest import Bot, MakeBot
from tests.discord.fake_discord import MANAGE_GUILD, FakeDiscord
from tests.discord.test_discord_adapter import answer_to, at_bot, reply_sent

pytestmark = pytest.mark.timeout(60)


async def label_counts(bot: Bot, channel_id: int) -> list[int]:
    """The label count of each decision in the channel, newest first."""
    return [d.labels for d in await bot.service.ops.recent_decisions(ChannelRef("discord", str(channel_id)))]


async def test_a_thumbs_down_labels_only_an_unasked_reply(fake: FakeDiscord, make_bot: MakeBot) -> None:
    # The bot chooses to speak about walls only.
    bot = await make_bot(p_speak=lambda window: 0.9 if "wall" in window[-1].content else 0.05)
    ann, ben = fake.add_person("ann", nick="Ann"), fake.add_person("ben", nick="Ben")
    asked_unasked = await fake.post(fake.general, ann, "when did the berlin wall fall again?")
    (unasked,) = await reply_sent(fake, 1)
    await fake.post(fake.general, ben, f"{at_bot(fake)} and how long was it?", mentions=(fake.bot,))
    forced = (await reply_sent(fake, 2))[1]
    await bot.decisions(2)
    await bot.settle()
    reply_id, forced_id = int(unasked.response["id"]), int(forced.response["id"])

    await fake.react(reply_id, ben, "👎🏻")
    await fake.react(reply_id, ben, "👎")  # the same person again: still one label
    await fake.react(reply_id, fake.bot, "👎")  # the bot's own reaction counts for nothing
    await fake.react(forced_id, ann, "👎")  # someone asked for that reply
    await fake.react(int(asked_unasked["id"]), ben, "👎")  # a person's message
    await fake.react(reply_id, ann, "👍")
    await fake.react(reply_id, ann, "👎🏿")
    await bot.settle()
    assert await label_counts(bot, fake.general) == [0, 2]

    owner = fake.add_person("owner")
    token = await fake.slash(fake.general, owner, "why", permissions=MANAGE_GUILD)
    lines = (await answer_to(fake, token))["content"].splitlines()
    assert lines[0] == f"Last 2 decisions in discord:{fake.general}, newest first (UTC; p_speak vs threshold):"
    assert lines[1].endswith(" forced p 0.05 < 0.50 | Ben: @assistant and how long was it?")
    assert lines[2].endswith(
        " spoke p 0.90 ≥ 0.50 👎 false interruption x2 | Ann: when did the berlin wall fall again?"
    )
    token = await fake.slash(fake.general, ann, "why")
    assert (await answer_to(fake, token))["content"].startswith("Sorry, only channel admins")

    # Taking a 👎 back takes that person's label back.
    await fake.react(reply_id, ben, "👎🏻", remove=True)
    await bot.settle()
    assert await label_counts(bot, fake.general) == [0, 1]
