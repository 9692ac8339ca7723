"""The store on SQLite and PostgreSQL: idempotence, edits, deletions, forgetting, migrations."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import inspect

from bot.domain import ChannelRef, IncomingMessage
from bot.store import DecisionRow, Store, StoreError, make_engine, sqlite_url
from bot.store.migrate import current_revision, downgrade, head_revision, upgrade

CH = ChannelRef("test", "c1", "general")
OTHER = ChannelRef("test", "c2", "random")


def msg(mid: str, author: str = "u1", text: str = "hello", channel: ChannelRef = CH, at: datetime | None = None):
    return IncomingMessage(
        channel=channel,
        message_id=mid,
        author_id=author,
        display_name=author.upper(),
        text=text,
        created_at=at or datetime.now(UTC),
        mentions=("x",),
    )


@pytest.fixture
def store(store_url: str):
    upgrade(store_url)
    s = Store(store_url)
    yield s
    s.close()


def test_redelivered_message_is_a_no_op(store: Store) -> None:
    ch = store.channel(CH)
    assert store.add_message(msg("m1"), channel_pk=ch.pk) is not None
    assert store.add_message(msg("m1", text="changed"), channel_pk=ch.pk) is None
    rows = store.recent_messages(ch.pk, 10)
    assert [(m.platform_message_id, m.text) for m in rows] == [("m1", "hello")]


def test_times_are_utc_aware_and_exact(store: Store) -> None:
    ch = store.channel(CH)
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    store.add_message(msg("m1", at=at), channel_pk=ch.pk)
    got = store.recent_messages(ch.pk, 1)[0].created_at
    assert got == at and got.tzinfo is not None


def test_huge_message_is_stored_whole(store: Store) -> None:
    ch = store.channel(CH)
    text = "x" * 100_000 + "END"
    store.add_message(msg("big", text=text), channel_pk=ch.pk)
    assert store.recent_messages(ch.pk, 1)[0].text == text


def test_nul_characters_are_dropped_on_every_backend(store: Store) -> None:
    # PostgreSQL refuses NUL in text; SQLite would keep it. Every backend stores it without.
    ch = store.channel(ChannelRef("test", "c9", "gen\x00eral"))
    m = IncomingMessage(
        channel=CH,
        message_id="nul",
        author_id="a\x00nn",
        display_name="Ann\x00",
        text="before\x00after\x00",
        reply_to="m\x000",
        mentions=("x\x00y",),
    )
    assert store.add_message(m, channel_pk=ch.pk) is not None
    [got] = store.all_messages(ch.pk)
    assert (got.text, got.display_name, got.author_id) == ("beforeafter", "Ann", "ann")
    assert store.find_channel("test:c9").name == "general"
    assert store.edit_message("test", "nul", "edited\x00", datetime.now(UTC))
    assert store.get_message("test", "nul").text == "edited"
    assert store.forget_author("test", "a\x00nn") == 1


def test_channel_settings_persist(store: Store) -> None:
    first = store.channel(CH, talkativeness=30, history_size=12)
    assert (first.talkativeness, first.history_size, first.muted) == (30, 12, False)
    store.update_channel(CH, muted=True, talkativeness=80)
    again = store.channel(CH, talkativeness=10)
    assert (again.pk, again.muted, again.talkativeness) == (first.pk, True, 80)
    with pytest.raises(ValueError, match="unknown channel setting"):
        store.update_channel(CH, loud=True)
    assert store.find_channel("test:c1") == again
    assert store.find_channel("general") == again
    assert store.find_channel("test:nope") is None


def test_edit_and_delete(store: Store) -> None:
    ch = store.channel(CH)
    store.add_message(msg("m1"), channel_pk=ch.pk)
    assert store.edit_message("test", "m1", "edited", datetime.now(UTC))
    assert store.get_message("test", "m1").text == "edited"
    assert not store.edit_message("test", "missing", "x", datetime.now(UTC))
    assert store.delete_message("test", "m1")
    assert store.get_message("test", "m1") is None
    assert not store.delete_message("test", "m1")


def test_recent_messages_window(store: Store) -> None:
    ch = store.channel(CH)
    pks = [store.add_message(msg(f"m{i}"), channel_pk=ch.pk) for i in range(10)]
    assert [m.pk for m in store.recent_messages(ch.pk, 3)] == pks[-3:]
    assert [m.pk for m in store.recent_messages(ch.pk, 100, min_pk=pks[7])] == pks[7:]


def test_forget_author_deletes_everywhere_and_keeps_others(store: Store) -> None:
    c1, c2 = store.channel(CH), store.channel(OTHER)
    p1 = store.add_message(msg("a1", author="ann"), channel_pk=c1.pk)
    store.add_message(msg("a2", author="ann", channel=OTHER), channel_pk=c2.pk)
    store.add_message(msg("b1", author="ben"), channel_pk=c1.pk)
    store.record_decision(c1.pk, DecisionRow(p1, 0.2, 0.5, False, False, "r", "m", 1.0, "silent"))
    assert store.forget_author("test", "ann") == 2
    assert [m.author_id for m in store.all_messages(c1.pk)] == ["ben"]
    assert store.all_messages(c2.pk) == []
    assert store.counts(c1.pk) == (1, 0)


def test_clear_channel(store: Store) -> None:
    c1, c2 = store.channel(CH), store.channel(OTHER)
    p = store.add_message(msg("a1"), channel_pk=c1.pk)
    store.add_message(msg("a2", channel=OTHER), channel_pk=c2.pk)
    store.record_decision(c1.pk, DecisionRow(p, 0.9, 0.5, True, True, "r", "m", 1.0, "sent"))
    assert store.clear_channel(c1.pk) == 1
    assert store.counts(c1.pk) == (0, 0)
    assert store.counts(c2.pk) == (1, 0)


def test_deleting_a_decided_message_keeps_the_decision(store: Store) -> None:
    ch = store.channel(CH)
    p = store.add_message(msg("a1"), channel_pk=ch.pk)
    store.record_decision(ch.pk, DecisionRow(p, 0.7, 0.5, True, False, "r", "m", 3.0, "sent"))
    store.delete_message("test", "a1")
    [d] = store.decisions(ch.pk)
    assert d.message_pk is None and d.p_speak == 0.7


def test_purge_before(store: Store) -> None:
    ch = store.channel(CH)
    old = datetime.now(UTC) - timedelta(days=40)
    store.add_message(msg("old", at=old), channel_pk=ch.pk)
    store.add_message(msg("new"), channel_pk=ch.pk)
    m, _ = store.purge_before(datetime.now(UTC) - timedelta(days=30))
    assert m == 1
    assert [x.platform_message_id for x in store.all_messages(ch.pk)] == ["new"]


def test_platform_state(store: Store) -> None:
    assert store.get_state("matrix", "next_batch") is None
    store.set_state("matrix", "next_batch", "s1")
    store.set_state("matrix", "next_batch", "s2")
    assert store.get_state("matrix", "next_batch") == "s2"


def test_naive_datetimes_are_refused(store: Store) -> None:
    ch = store.channel(CH)
    with pytest.raises(ValueError, match="timezone-aware"):
        IncomingMessage(
            channel=CH, message_id="n", author_id="a", display_name="A", text="x", created_at=datetime(2026, 1, 1)
        )
    assert ch.pk > 0


def test_migrations_from_empty_and_round_trip(store_url: str) -> None:
    assert current_revision(store_url) is None
    upgrade(store_url)
    assert current_revision(store_url) == head_revision()
    engine = make_engine(store_url)
    tables = set(inspect(engine).get_table_names())
    assert {"channels", "messages", "decisions", "platform_state", "alembic_version"} <= tables
    engine.dispose()
    downgrade(store_url, "base")
    assert current_revision(store_url) is None
    engine = make_engine(store_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(store_url)
    s = Store(store_url)
    ch = s.channel(CH)
    assert s.add_message(msg("after-roundtrip"), channel_pk=ch.pk) is not None
    s.close()


def test_locked_database_is_retried_then_reported(tmp_path: Path) -> None:
    path = tmp_path / "chime.db"
    url = sqlite_url(path)
    upgrade(url)
    store = Store(url, retries=2, retry_delay_s=0.01)
    ch = store.channel(CH)
    # Another process holds the write lock for longer than our busy timeout.
    store.engine.dispose()
    store = Store(url, retries=2, retry_delay_s=0.01)
    from sqlalchemy import event

    @event.listens_for(store.engine, "connect")
    def _short_timeout(conn, _):  # noqa: ANN001
        conn.execute("PRAGMA busy_timeout=50")

    locker = sqlite3.connect(path)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StoreError, match="add_message failed after 2 attempts"):
            store.add_message(msg("locked"), channel_pk=ch.pk)
    finally:
        locker.rollback()
        locker.close()
    # Nothing was lost, and the store works again once the lock is gone.
    assert store.add_message(msg("locked"), channel_pk=ch.pk) is not None
    store.close()


def test_a_deleted_database_file_is_reported_not_written_into_the_void(tmp_path: Path) -> None:
    path = tmp_path / "chime.db"
    url = sqlite_url(path)
    upgrade(url)
    store = Store(url)
    ch = store.channel(CH)
    assert store.add_message(msg("before"), channel_pk=ch.pk) is not None
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with pytest.raises(StoreError, match="was deleted or replaced while chime was running"):
        store.add_message(msg("after"), channel_pk=ch.pk)
    store.close()
