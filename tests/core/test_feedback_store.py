"""Labels from the room on the store (SQLite and PostgreSQL): a 👎 on an unasked reply, and what deletes it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, inspect, select

from bot.domain import ChannelRef, IncomingMessage
from bot.store import DecisionRow, Store
from bot.store import feedback as fb
from bot.store.migrate import downgrade, revisions, upgrade
from bot.store.models import DecisionLabel

CH = ChannelRef("test", "c1", "general")
# The revision that adds decision_labels.
LABELS_REVISION = "0008"


def said(store: Store, mid: str, author: str = "ann", text: str = "what year did the wall fall?", **kw) -> int:
    ch = store.channel(CH)
    m = IncomingMessage(CH, mid, author, author.title(), text, created_at=datetime.now(UTC))
    pk = store.add_message(m, channel_pk=ch.pk, **kw)
    assert pk is not None
    return pk


def answered(store: Store, trigger_id: str, reply_id: str, *, forced: bool = False, p: float = 0.8) -> int:
    """The bot decided on ``trigger_id``, spoke, and stored its reply ``reply_id``; returns the trigger's key."""
    pk = said(store, trigger_id, forced=forced)
    reply = IncomingMessage(CH, reply_id, "@assistant", "assistant", "1989.", reply_to=trigger_id, is_bot=True)
    row = DecisionRow(pk, p, 0.5, True, forced, "test", "model", 12.0, "sent")
    store.record_decision(store.channel(CH).pk, row, reply)
    return pk


def labels(store: Store) -> int:
    with store.engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(DecisionLabel))


def test_a_thumbs_down_on_an_unasked_reply_is_one_label_per_person(store: Store) -> None:
    pk = answered(store, "q1", "r1")
    assert store.label_reply("test", "r1", "ben") == fb.RECORDED
    assert store.label_reply("test", "r1", "ben") == fb.DUPLICATE  # the same reaction twice
    assert store.label_reply("test", "r1", "cat") == fb.RECORDED
    assert labels(store) == 2
    ch = store.channel(CH)
    assert store.labelled_messages(ch.pk) == {pk}
    [logged] = store.decision_log(ch.pk)
    assert (logged.labels, logged.forced, logged.outcome, logged.author) == (2, False, "sent", "Ann")
    assert logged.created_at.tzinfo is not None


def test_forced_replies_and_peoples_messages_get_no_label(store: Store) -> None:
    answered(store, "q1", "r1", forced=True)
    said(store, "h1", author="ben", text="lol")
    assert store.label_reply("test", "r1", "ben") == fb.FORCED
    assert store.label_reply("test", "h1", "cat") == fb.NOT_A_REPLY
    assert store.label_reply("test", "nowhere", "cat") == fb.NOT_A_REPLY
    assert labels(store) == 0
    assert store.labelled_messages(store.channel(CH).pk) == set()


def test_taking_the_reaction_back_removes_the_label(store: Store) -> None:
    answered(store, "q1", "r1")
    store.label_reply("test", "r1", "ben")
    store.label_reply("test", "r1", "cat", source_id="$reaction-by-cat")
    assert store.unlabel_reply("test", "r1", "ben")
    assert not store.unlabel_reply("test", "r1", "ben")
    # A redaction names only the reaction's own event: deleting it takes its label along.
    store.delete_message("test", "$reaction-by-cat")
    assert labels(store) == 0
    assert store.decision_log(store.channel(CH).pk)[0].labels == 0


def test_forget_me_deletes_the_labels_a_person_gave_and_those_on_their_messages(store: Store) -> None:
    answered(store, "q1", "r1")  # ann asked
    store.label_reply("test", "r1", "ben")
    store.label_reply("test", "r1", "ann")
    store.forget_author("test", "ben")
    assert labels(store) == 1
    store.forget_author("test", "ann")  # her message, its decision, and her label go
    assert labels(store) == 0
    # The reply is still stored, but what it answered is gone: nothing to label any more.
    assert store.label_reply("test", "r1", "cat") == fb.NO_DECISION


def test_forgetting_a_channel_or_purging_deletes_its_labels(store: Store) -> None:
    answered(store, "q1", "r1")
    store.label_reply("test", "r1", "ben")
    store.clear_channel(store.channel(CH).pk)
    assert labels(store) == 0
    answered(store, "q2", "r2")
    store.label_reply("test", "r2", "ben")
    store.purge_before(datetime(2100, 1, 1, tzinfo=UTC))
    assert labels(store) == 0


def test_the_decision_log_is_newest_first_and_limited(store: Store) -> None:
    for n in range(12):
        answered(store, f"q{n}", f"r{n}", p=n / 20)
    log = store.decision_log(store.channel(CH).pk, 10)
    assert [round(d.p_speak * 20) for d in log] == list(range(11, 1, -1))


def test_the_labels_migration_goes_down_and_up(store_url: str) -> None:
    upgrade(store_url)
    s = Store(store_url)
    answered(s, "q1", "r1")
    s.label_reply("test", "r1", "ben")
    s.close()
    known = revisions()
    downgrade(store_url, known[known.index(LABELS_REVISION) - 1])
    s = Store(store_url)
    assert "decision_labels" not in inspect(s.engine).get_table_names()
    s.close()
    upgrade(store_url)
    s = Store(store_url)
    assert labels(s) == 0 and s.label_reply("test", "r1", "ben") == fb.RECORDED
    s.close()
