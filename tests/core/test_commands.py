"""Admin commands and their permission check."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.config import parse_config
from bot.domain import ChannelRef, CommandContext, IncomingMessage
from bot.service import ConversationService
from bot.store import Store, sqlite_url
from bot.store.migrate import upgrade
from tests.fakes import RecordingSender, ScriptedRuntime

CH = ChannelRef("test", "c1", "general")
OTHER = ChannelRef("test", "c2", "random")
ADMIN = CommandContext(CH, "ann", "Ann", is_admin=True)
MEMBER = CommandContext(CH, "ben", "Ben", is_admin=False)


@pytest.fixture
async def svc(tmp_path: Path):
    url = sqlite_url(tmp_path / "chime.db")
    upgrade(url)
    runtime = ScriptedRuntime(0.0)
    service = ConversationService(Store(url), runtime, parse_config({}))
    service.register("test", RecordingSender())
    yield service
    await service.close()


async def say(svc: ConversationService, mid: str, author: str, text: str, channel: ChannelRef = CH) -> None:
    await svc.handle_message(
        IncomingMessage(channel=channel, message_id=mid, author_id=author, display_name=author, text=text)
    )
    await svc.drain()


async def test_status_reports_settings_and_counts(svc) -> None:
    await say(svc, "1", "ann", "hello")
    answer = await svc.run_command(MEMBER, "status")
    assert "listening in test:c1" in answer
    assert "talkativeness 50 (threshold 0.50)" in answer
    assert "stored 1 messages, 1 decisions" in answer


async def test_mute_and_unmute(svc) -> None:
    assert "Muted" in await svc.run_command(ADMIN, "mute")
    assert svc.store.channel(CH).muted
    assert "muted in" in await svc.run_command(MEMBER, "status")
    assert "Unmuted" in await svc.run_command(ADMIN, "unmute")
    assert not svc.store.channel(CH).muted


@pytest.mark.parametrize("command", ["mute", "unmute", "talkativeness 10", "forget", "history 5"])
async def test_admin_commands_refuse_non_admins(svc, command: str, caplog) -> None:
    caplog.set_level(logging.WARNING)
    before = svc.store.channel(CH)
    answer = await svc.run_command(MEMBER, command)
    assert answer.startswith("Sorry, only channel admins")
    assert svc.store.channel(CH) == before
    assert any("refused admin command" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ("talkativeness", "one whole number"),
        ("talkativeness 101", "from 0 to 100"),
        ("talkativeness loud", "one whole number"),
        ("history 0", "from 1 to 1000"),
    ],
)
async def test_bad_arguments_get_usage(svc, args: str, error: str) -> None:
    answer = await svc.run_command(ADMIN, args)
    assert error in answer and "Usage:" in answer


async def test_talkativeness_and_history_are_stored(svc) -> None:
    assert "p_speak >= 0.20" in await svc.run_command(ADMIN, "talkativeness 80")
    assert "only speak when addressed" in await svc.run_command(ADMIN, "talkativeness 0")
    await svc.run_command(ADMIN, "history 7")
    s = svc.store.channel(CH)
    assert (s.talkativeness, s.history_size) == (0, 7)


async def test_forget_clears_only_this_channel(svc) -> None:
    await say(svc, "1", "ann", "hello")
    await say(svc, "2", "ben", "elsewhere", channel=OTHER)
    assert "1 messages deleted" in await svc.run_command(ADMIN, "forget")
    assert svc.store.counts(svc.store.channel(CH).pk) == (0, 0)
    assert svc.store.counts(svc.store.channel(OTHER).pk)[0] == 1
    assert CH.key in svc.decider.forgotten


async def test_forget_me_deletes_the_callers_messages_everywhere(svc) -> None:
    await say(svc, "1", "ben", "mine")
    await say(svc, "2", "ann", "hers")
    await say(svc, "3", "ben", "mine too", channel=OTHER)
    assert "2 messages" in await svc.run_command(MEMBER, "forget-me")
    texts = [m.text for m in svc.store.all_messages(svc.store.channel(CH).pk)]
    assert texts == ["hers"]
    assert svc.store.all_messages(svc.store.channel(OTHER).pk) == []
    # The model's cached states of both channels held the deleted text: both are dropped.
    assert {CH.key, OTHER.key} <= set(svc.decider.forgotten)


async def test_unknown_and_empty_commands_get_help(svc) -> None:
    assert "Unknown command 'dance'" in await svc.run_command(MEMBER, "dance now")
    assert "talkativeness N" in await svc.run_command(MEMBER, "")
    assert "forget-me" in await svc.run_command(MEMBER, "HELP")
