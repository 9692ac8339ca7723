"""``chime export CHANNEL --labels``: the labelled conversations, a false interruption as gold silence, nothing forgotten."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bot.domain import ChannelRef, IncomingMessage
from bot.export import labelled_conversations, to_conversations
from bot.store import DecisionRow, Store, StoredMessage, sqlite_url
from bot.store import feedback as fb
from bot.store.migrate import upgrade
from tests.core.test_cli import chime

CH = ChannelRef("console", "main", "main")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Room:
    """A console channel in a real store, written the way the service writes it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pk = store.channel(CH).pk
        self.minutes = 0

    def say(self, mid: str, author: str, text: str, *, gap: timedelta = timedelta(0)) -> int:
        self.minutes += 1
        at = T0 + timedelta(minutes=self.minutes) + gap
        pk = self.store.add_message(IncomingMessage(CH, mid, author, author.title(), text, at), channel_pk=self.pk)
        assert pk is not None
        return pk

    def decide(self, pk: int, mid: str, *, speak: bool, forced: bool = False, reply: str = "In 1989.") -> str:
        """Record the decision on ``pk``; when it speaks, its reply is ``r<mid>``."""
        own = None
        if speak:
            self.minutes += 1
            at = T0 + timedelta(minutes=self.minutes)
            own = IncomingMessage(CH, f"r{mid}", "@assistant", "assistant", reply, at, reply_to=mid, is_bot=True)
        row = DecisionRow(
            pk, 0.9 if speak else 0.1, 0.5, speak, forced, "test", "m", 1.0, "sent" if speak else "silent"
        )
        self.store.record_decision(self.pk, row, own)
        return f"r{mid}"


def test_export_with_labels_after_a_forget_me(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "chime.db")
    upgrade(url)
    store = Store(url)
    room = Room(store)
    first = room.decide(room.say("1", "ann", "so the wall came down in 1991 right"), "1", speak=True)
    room.decide(room.say("2", "ben", "no idea"), "2", speak=False)
    cats = room.decide(room.say("3", "cat", "the great wall is visible from space, right?"), "3", speak=True)
    room.decide(room.say("4", "ann", "@assistant how long is it?"), "4", speak=True, forced=True, reply="21,196 km.")
    fifth = room.decide(room.say("5", "ben", "the wall in my garden needs paint"), "5", speak=True, reply="Blue?")
    # Next day, a conversation nobody labelled.
    room.decide(room.say("6", "ann", "morning", gap=timedelta(days=1)), "6", speak=True, reply="Morning!")
    for reply in (first, cats, fifth):
        assert store.label_reply("console", reply, "ben") == fb.RECORDED
    assert store.unlabel_reply("console", fifth, "ben")
    # Cat forgets herself: her message, the decision on it and its label go; the reply to it is not exported.
    store.forget_author("console", "cat")
    store.close()

    out = tmp_path / "labelled.jsonl"
    r = chime("export", "console:main", "--labels", "--out", str(out), "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "wrote 1 labelled conversations (6 messages; 1 false interruptions as silent turns)" in r.stdout
    [conv] = [json.loads(line) for line in out.read_text().splitlines()]
    assert conv == [
        {"role": "user", "name": "Ann", "content": "so the wall came down in 1991 right"},  # gold silence now
        {"role": "user", "name": "Ben", "content": "no idea"},
        {"role": "user", "name": "Ann", "content": "@assistant how long is it?"},
        {"role": "assistant", "content": "21,196 km."},
        {"role": "user", "name": "Ben", "content": "the wall in my garden needs paint"},
        {"role": "assistant", "content": "Blue?"},  # its label was taken back
    ]
    assert "great wall" not in out.read_text()

    # The plain export keeps the bot's replies, except the one to the forgotten message.
    r = chime("export", "console:main", "--out", str(out), "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    texts = [m["content"] for line in out.read_text().splitlines() for m in json.loads(line)]
    assert "In 1989." in texts and texts.count("In 1989.") == 1 and "great wall" not in " ".join(texts)


def stored(pk: int, mid: str, text: str, *, reply_to: str | None = None, minute: int = 0) -> StoredMessage:
    own = reply_to is not None
    author = "@assistant" if own else "ann"
    return StoredMessage(pk, mid, author, author, text, T0 + timedelta(minutes=minute), own, own, reply_to=reply_to)


def test_a_reply_to_a_deleted_message_is_not_attached_to_another() -> None:
    messages = [
        stored(1, "a", "first question?", minute=1),
        # "b" was deleted; its reply stays stored, but must not look like the answer to "a".
        stored(3, "rb", "the answer to b", reply_to="b", minute=3),
        stored(4, "c", "ok", minute=4),
    ]
    assert to_conversations(messages) == [
        [
            {"role": "user", "name": "ann", "content": "first question?"},
            {"role": "user", "name": "ann", "content": "ok"},
        ]
    ]
    assert labelled_conversations(messages, {1}) == to_conversations(messages)
    assert labelled_conversations(messages, set()) == []
