"""Feedback through the service: which reactions label a decision, and ``why`` (also in the console)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import parse_config
from bot.domain import ChannelRef, CommandContext, IncomingMessage, IncomingReaction
from bot.feedback import NOTHING_TO_REMOVE, REMOVED, is_thumbs_down
from bot.service import ConversationService
from bot.store import Store, sqlite_url
from bot.store import feedback as fb
from bot.store.migrate import upgrade
from tests.core.test_cli import chime
from tests.fakes import RecordingSender, ScriptedRuntime

CH = ChannelRef("console", "main", "main")


def test_thumbs_down_in_every_skin_tone_and_nothing_else() -> None:
    for emoji in ("👎", "👎🏻", "👎🏼", "👎🏽", "👎🏾", "👎🏿", "👎\ufe0f", " 👎 "):
        assert is_thumbs_down(emoji), emoji
    for emoji in ("👍", "👍🏽", "👎👎", "-1", ":thumbsdown:", "", "🏽"):
        assert not is_thumbs_down(emoji), emoji


@pytest.fixture
async def svc(tmp_path: Path):
    url = sqlite_url(tmp_path / "chime.db")
    upgrade(url)
    # Speaks unasked about walls only.
    runtime = ScriptedRuntime(lambda w: 0.9 if "wall" in w[-1].content else 0.1, reply="In 1989.")
    service = ConversationService(Store(url), runtime, parse_config({}))
    service.register("console", RecordingSender())
    yield service
    await service.close()


async def say(svc: ConversationService, mid: str, author: str, text: str) -> None:
    await svc.handle_message(IncomingMessage(CH, mid, author, author.title(), text))
    await svc.drain()


def reaction(message_id: str, author: str, emoji: str = "👎", **kw) -> IncomingReaction:
    return IncomingReaction(CH, message_id, author, emoji, **kw)


async def reply_ids(svc: ConversationService) -> list[str]:
    settings = await svc.channel_settings(CH)
    return [m.platform_message_id for m in await svc.db(svc.store.all_messages, settings.pk) if m.from_assistant]


async def test_reactions_become_labels_only_on_unasked_replies(svc: ConversationService) -> None:
    await say(svc, "1", "ann", "when did the berlin wall fall?")
    await say(svc, "2", "ben", "@assistant how long was it?")
    unasked, forced = await reply_ids(svc)
    assert await svc.ops.record_feedback(reaction(unasked, "ben")) == fb.RECORDED
    assert await svc.ops.record_feedback(reaction(unasked, "ben", "👎🏾")) == fb.DUPLICATE
    assert await svc.ops.record_feedback(reaction(unasked, "cat", "👍")) is None
    assert await svc.ops.record_feedback(reaction(unasked, "bot", is_bot=True)) is None
    assert await svc.ops.record_feedback(reaction(forced, "ann")) == fb.FORCED
    assert await svc.ops.record_feedback(reaction("1", "ben")) == fb.NOT_A_REPLY
    assert await svc.ops.record_feedback(reaction(unasked, "ben"), removed=True) == REMOVED
    assert await svc.ops.record_feedback(reaction(unasked, "ben"), removed=True) == NOTHING_TO_REMOVE


async def test_why_lists_the_last_ten_decisions_for_admins(svc: ConversationService) -> None:
    admin = CommandContext(CH, "ann", "Ann", is_admin=True)
    assert await svc.run_command(admin, "why") == "No decisions yet in console:main."
    for n in range(11):
        await say(svc, f"m{n}", "ann", f"chat line {n}")
    await say(svc, "w", "ben", "the wall\nfell when, " + "exactly " * 10)
    (reply,) = await reply_ids(svc)
    await svc.ops.record_feedback(reaction(reply, "cat"))
    lines = (await svc.run_command(admin, "why")).splitlines()
    assert len(lines) == 11 and lines[0].startswith("Last 10 decisions in console:main")
    assert lines[1].endswith(
        " spoke p 0.90 ≥ 0.50 👎 false interruption x1 | Ben: the wall fell when, exactly exactly exactly exac…"
    )
    assert lines[2].endswith(" silent p 0.10 < 0.50 | Ann: chat line 10")
    assert lines[-1].endswith("| Ann: chat line 2")
    refused = await svc.run_command(CommandContext(CH, "ben", "Ben", is_admin=False), "why")
    assert refused.startswith("Sorry, only channel admins")


def test_why_in_the_console(tmp_path: Path) -> None:
    chat = "Ann: hi all\nBen: @assistant what is 2+2?\n/assistant why\n"
    r = chime("run", "--runtime", "rules", "--data-dir", str(tmp_path), stdin=chat)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith("Last 2 decisions in console:main"))
    assert " forced p 0.90 " in lines[i + 1] and lines[i + 1].endswith("| Ben: @assistant what is 2+2?")
    assert " silent p 0.05 < " in lines[i + 2] and lines[i + 2].endswith("| Ann: hi all")
