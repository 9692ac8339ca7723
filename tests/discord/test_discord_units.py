"""The Discord adapter's pure parts: splitting replies, mentions in code, access lists, name ownership."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.discord import DiscordAdapter
from adapters.discord.access import Access
from adapters.discord.convert import mentions_outside_code, split_message
from adapters.discord.names import NameRegistry, name_key
from bot.config import ConfigError, DiscordConfig, parse_config
from bot.service import ConversationService
from bot.store import Store, StoreError, sqlite_url
from bot.store.migrate import upgrade
from chime.app import build_adapters
from tests.fakes import ScriptedRuntime


def test_short_text_is_one_chunk() -> None:
    assert split_message("  hello there  ") == ["hello there"]


def test_split_prefers_lines_then_sentences_then_words() -> None:
    lines = "\n".join(f"line {i} " + "a" * 40 for i in range(10))
    chunks = split_message(lines, limit=120)
    assert all(len(c) <= 120 for c in chunks)
    assert all(c.startswith("line") for c in chunks)
    sentences = " ".join(f"Sentence {i} is here." for i in range(30))
    chunks = split_message(sentences, limit=100)
    assert all(len(c) <= 100 and c.endswith(".") and c.startswith("Sentence") for c in chunks)
    words = " ".join(["word"] * 100)
    assert all(len(c) <= 50 and not c.endswith(" ") for c in split_message(words, limit=50))
    assert " ".join(split_message(words, limit=50)) == words


def test_split_cuts_an_unbreakable_run_hard() -> None:
    chunks = split_message("x" * 5000)
    assert [len(c) for c in chunks] == [1996, 1996, 1008]


def test_split_closes_and_reopens_a_code_block() -> None:
    code = "Here is the script:\n```python\n" + "\n".join(f"print({i})" for i in range(400)) + "\n```\nDone."
    chunks = split_message(code, limit=500)
    assert all(len(c) <= 500 for c in chunks)
    assert all(c.count("```") % 2 == 0 for c in chunks)
    assert all(c.startswith("```python") for c in chunks[1:-1])
    joined = "\n".join(chunks).replace("\n```\n```python\n", "\n")
    assert joined.split() == code.split()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<@42> hi", True),
        ("<@!42> hi", True),
        ("hi <@420>", False),
        ("`<@42>`", False),
        ("```\n<@42>\n``` but <@42> too", True),
        ("```\n<@42>\n```", False),
        ("<@&7> role", True),
        ("`<@&7>`", False),
    ],
)
def test_mentions_outside_code(text: str, expected: bool) -> None:
    assert mentions_outside_code(text, 42, 7) is expected


def test_access_lists_deny_wins_and_threads_match_their_parent() -> None:
    access = Access(DiscordConfig(allowed_guilds=[1], denied_channels=[10], allowed_roles=[5], denied_users=[99]))
    assert access.place_allowed(1, 11)
    assert not access.place_allowed(2, 11)  # guild not allowed
    assert not access.place_allowed(1, 10)  # denied channel
    assert not access.place_allowed(1, 12, parent_id=10)  # thread of a denied channel
    assert access.place_allowed(None, 12)  # a DM, governed by respond_to_dms
    assert access.author_allowed(3, [5]) and not access.author_allowed(3, [6])
    assert not access.author_allowed(99, [5])
    assert access.author_allowed(3, None)  # DMs have no roles
    only_thread = Access(DiscordConfig(allowed_channels=[10], respond_to_dms=False))
    assert only_thread.place_allowed(1, 12, parent_id=10) and not only_thread.place_allowed(1, 13)
    assert not only_thread.place_allowed(None, 12)


def test_name_key_folds_case_width_and_invisible_characters() -> None:
    assert name_key("ＡＮＮ") == name_key("ann") == name_key(" A\u200bnn ") == "ann"
    assert name_key("Ann Lee") != name_key("AnnLee")


async def test_names_are_owned_by_their_first_user_and_survive_a_restart() -> None:
    state: dict[tuple[str, str], str] = {}

    async def get(p: str, k: str) -> str | None:
        return state.get((p, k))

    async def put(p: str, k: str, v: str) -> None:
        state[(p, k)] = v

    names = NameRegistry(get, put, max_chars=12)
    names.reserve("g", "Chime", "1000")
    assert await names.display_name("g", "1111", "Ann") == "Ann"
    assert await names.display_name("g", "2222", "ann") == "ann (2222)"
    assert await names.display_name("g", "3333", "chime") == "chime (3333)"
    assert await names.display_name("other", "2222", "ann") == "ann"  # another guild
    assert await names.display_name("g", "4444", "A very long nickname") == "A very long nickname"
    assert await names.display_name("g", "5555", "A very long nickname") == "A ver (5555)"
    restarted = NameRegistry(get, put, max_chars=12)
    assert await restarted.display_name("g", "2222", "Ann") == "Ann (2222)"
    assert await restarted.display_name("g", "1111", "ANN") == "ANN"


async def test_names_work_without_the_store() -> None:
    async def broken(*args: str) -> None:
        raise StoreError("database is down")

    names = NameRegistry(broken, broken, max_chars=32)
    assert await names.display_name("g", "1111", "Ann") == "Ann"
    assert await names.display_name("g", "2222", "Ann") == "Ann (2222)"


async def test_the_app_builds_the_adapter_with_the_token_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = sqlite_url(tmp_path / "chime.db")
    upgrade(url)
    cfg = {"console": {"enabled": False}, "discord": {"enabled": True, "token_env": "CHIME_TEST_NO_SUCH_TOKEN"}}
    config = parse_config({"adapters": cfg})
    service = ConversationService(Store(url), ScriptedRuntime(), config)
    monkeypatch.delenv("CHIME_TEST_NO_SUCH_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="adapters.discord.token_env: environment variable CHIME_TEST_NO_SUCH_TOKEN"):
        build_adapters(service, config)
    monkeypatch.setenv("CHIME_TEST_NO_SUCH_TOKEN", "secret")
    (adapter,) = build_adapters(service, config)
    assert isinstance(adapter, DiscordAdapter)
    await service.close()
