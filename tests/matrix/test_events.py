"""The Matrix adapter's pure conversions and start-up checks (no homeserver needed)."""

from __future__ import annotations

import pytest
from nio import MatrixRoom

from adapters.matrix import create_adapter
from adapters.matrix.events import (
    Relation,
    display_name,
    html_to_text,
    links_to,
    mentioned_users,
    message_text,
    relation,
    strip_reply_fallback,
    to_incoming,
)
from bot.config import ConfigError, MatrixConfig, parse_config
from bot.service import ConversationService
from bot.store import Store, sqlite_url
from bot.store.migrate import upgrade
from tests.fakes import ScriptedRuntime

BOT = "@chime:example.org"


def test_relations_are_read_defensively() -> None:
    assert relation({"m.relates_to": {"m.in_reply_to": {"event_id": "$a"}}}) == Relation(reply_to="$a")
    assert relation({"m.relates_to": {"rel_type": "m.replace", "event_id": "$b"}}) == Relation(replaces="$b")
    thread = {"rel_type": "m.thread", "event_id": "$root", "is_falling_back": True, "m.in_reply_to": {"event_id": "$x"}}
    assert relation({"m.relates_to": thread}) == Relation(thread_root="$root")
    thread["is_falling_back"] = False
    assert relation({"m.relates_to": thread}) == Relation(reply_to="$x", thread_root="$root")
    for bad in ("nope", {"m.in_reply_to": "x"}, {"m.in_reply_to": {"event_id": 5}}, {"rel_type": "m.replace"}):
        assert relation({"m.relates_to": bad}).reply_to is None


def test_text_drops_reply_fallbacks_and_html() -> None:
    assert strip_reply_fallback("> <@a:b> earlier\n> more\n\nmy answer") == "my answer"
    assert strip_reply_fallback("> a quote I typed myself") == ""
    assert strip_reply_fallback("no quote") == "no quote"
    html = "<mx-reply><blockquote>old</blockquote></mx-reply><p>new <b>text</b></p><script>x()</script>"
    assert html_to_text(html) == "new text"
    assert message_text({"body": "> <@a:b> q\n\nanswer"}, Relation(reply_to="$q")) == "answer"
    assert message_text({"body": "> quoting is fine here"}, Relation()) == "> quoting is fine here"
    assert message_text({"body": 42, "formatted_body": "<i>hi</i>"}, Relation()) == "hi"
    assert message_text({"msgtype": "m.audio", "body": ""}, Relation()) == "[audio: no name]"
    assert message_text({"body": "wave"}, Relation(), "m.sticker") == "[sticker: wave]"


def test_mentions_and_pills() -> None:
    assert mentioned_users({"m.mentions": {"user_ids": [BOT, 5, "@x:y"]}}) == (BOT, "@x:y")
    assert mentioned_users({"m.mentions": "everyone"}) == ()
    assert links_to({"formatted_body": f'<a href="https://matrix.to/#/{BOT}">chime</a>'}, BOT)
    assert links_to({"formatted_body": '<a href="https://matrix.to/#/%40chime%3Aexample.org">c</a>'}, BOT)
    assert links_to({"formatted_body": '<a href="matrix:u/chime:example.org">c</a>'}, BOT)
    assert not links_to({"formatted_body": '<a href="https://matrix.to/#/@chimera:example.org">c</a>'}, BOT)
    assert not links_to({"body": BOT}, BOT)


def test_a_reply_quoting_a_mention_of_the_bot_does_not_address_it() -> None:
    """Element's reply fallback quotes the original, pill included: only the new text counts."""
    room = _room(**{"@ann:x.org": "Ann", "@bob:x.org": "Bob"})
    pill = f'<a href="https://matrix.to/#/{BOT}">chime</a>'
    quoted = (
        '<mx-reply><blockquote><a href="https://matrix.to/#/$q">In reply to</a> '
        f'<a href="https://matrix.to/#/@ann:x.org">@ann:x.org</a><br>{pill} what is 12 times 12?'
        "</blockquote></MX-REPLY>"
    )
    content = {
        "msgtype": "m.text",
        "body": f"> <@ann:x.org> {BOT} what is 12 times 12?\n> second quoted line\n\n144, I think",
        "format": "org.matrix.custom.html",
        "formatted_body": quoted + "144, I think",
        "m.relates_to": {"m.in_reply_to": {"event_id": "$q"}},
        "m.mentions": {"user_ids": ["@ann:x.org"]},
    }
    source = {"event_id": "$r", "sender": "@bob:x.org", "origin_server_ts": 1, "content": content}
    msg, _ = to_incoming(room, source, bot_user_id=BOT, reserved=(), max_name_chars=32)
    assert (msg.text, msg.addressed, msg.reply_to) == ("144, I think", False, "$q")
    # A pill in the new text still addresses it.
    content["formatted_body"] = quoted + f"{pill} is that right?"
    msg, _ = to_incoming(room, source, bot_user_id=BOT, reserved=(), max_name_chars=32)
    assert msg.addressed


def _room(**names: str | None) -> MatrixRoom:
    room = MatrixRoom("!r:example.org", BOT)
    for user_id, name in names.items():
        room.add_member(user_id, name, None)
    return room


def test_display_names_are_disambiguated() -> None:
    room = _room(**{"@ann:x.org": "Ann", "@bo:x.org": "ann.", "@cy:x.org": "Cy", "@dee:x.org": None, BOT: "chime"})
    assert display_name(room, "@cy:x.org") == "Cy"
    assert display_name(room, "@ann:x.org") == "Ann [@ann:x.org]"
    assert display_name(room, "@bo:x.org") == "ann. [@bo:x.org]"
    assert display_name(room, "@dee:x.org") == "@dee:x.org"
    assert display_name(room, "@cy:x.org", reserved=("cy",)) == "Cy [@cy:x.org]"
    assert display_name(room, "@stranger:x.org") == "@stranger:x.org"
    long = _room(**{"@e:x.org": "E" * 100})
    assert display_name(long, "@e:x.org") == "E" * 32


def test_incoming_message_from_an_event() -> None:
    room = _room(**{"@ann:x.org": "Ann"})
    source = {
        "event_id": "$1",
        "sender": "@ann:x.org",
        "origin_server_ts": 1_700_000_000_000,
        "content": {"msgtype": "m.notice", "body": "hi", "m.mentions": {"user_ids": [BOT]}},
    }
    msg, rel = to_incoming(room, source, bot_user_id=BOT, reserved=(), max_name_chars=32)
    assert (msg.channel.key, msg.message_id, msg.display_name, msg.text) == ("matrix:!r:example.org", "$1", "Ann", "hi")
    assert msg.addressed and msg.is_bot and msg.created_at.year == 2023 and rel == Relation()


async def test_start_up_errors_name_the_setting(tmp_path, monkeypatch) -> None:
    url = sqlite_url(tmp_path / "chime.db")
    upgrade(url)
    service = ConversationService(Store(url), ScriptedRuntime(), parse_config({}))
    monkeypatch.delenv("MATRIX_ACCESS_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="MATRIX_ACCESS_TOKEN"):
        create_adapter(service, MatrixConfig(enabled=True, user_id=BOT))
    monkeypatch.setenv("CHIME_PW", "secret-pw")
    with pytest.raises(ConfigError, match="adapters.matrix.user_id"):
        create_adapter(service, MatrixConfig(enabled=True, access_token_env=None, password_env="CHIME_PW"))
    monkeypatch.setenv("MATRIX_ACCESS_TOKEN", "secret-token")
    with pytest.raises(ConfigError, match="adapters.matrix.(e2ee|store_dir)"):
        create_adapter(service, MatrixConfig(enabled=True, user_id=BOT, e2ee=True))
    adapter = create_adapter(service, MatrixConfig(enabled=True, user_id=BOT))
    assert "secret-token" not in repr(vars(adapter.cfg))
    await adapter.close()
    await service.close()
