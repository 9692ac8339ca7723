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


def test_message_ids_are_never_reused_after_deletions(store: Store) -> None:
    ch, other = store.channel(CH), store.channel(OTHER)
    store.add_message(msg("o1", channel=OTHER), channel_pk=other.pk)
    newest = [store.add_message(msg(f"m{i}"), channel_pk=ch.pk) for i in range(3)]
    store.clear_channel(ch.pk)
    after = store.add_message(msg("after"), channel_pk=ch.pk)
    assert after > max(newest)
    store.delete_message("test", "after")
    assert store.add_message(msg("again"), channel_pk=ch.pk) > after


def test_deleted_messages_are_tombstoned_and_never_stored_again(store: Store) -> None:
    ch = store.channel(CH)
    store.add_message(msg("a1", author="ann"), channel_pk=ch.pk)
    store.add_message(msg("b1", author="ben"), channel_pk=ch.pk)
    store.add_message(msg("old", at=datetime.now(UTC) - timedelta(days=40)), channel_pk=ch.pk)
    store.forget_author("test", "ann")
    store.delete_message("test", "b1")
    store.purge_before(datetime.now(UTC) - timedelta(days=30))
    store.delete_message("test", "never-stored")  # a deletion seen before its message
    for mid in ("a1", "b1", "old", "never-stored"):
        assert store.is_known("test", mid)
        assert store.add_message(msg(mid), channel_pk=ch.pk) is None, mid
    assert store.all_messages(ch.pk) == []
    store.add_message(msg("c1"), channel_pk=ch.pk)
    assert store.clear_channel(ch.pk) == 1
    assert store.add_message(msg("c1"), channel_pk=ch.pk) is None
    assert not store.is_known("test", "fresh") and store.add_message(msg("fresh"), channel_pk=ch.pk) is not None
    # Tombstones keep nothing but the platform and the id.
    engine = make_engine(store.url)
    assert [c["name"] for c in inspect(engine).get_columns("forgotten_messages")] == [
        "platform",
        "platform_message_id",
        "forgotten_at",
    ]
    engine.dispose()


def test_outcomes_and_pending_messages(store: Store) -> None:
    ch = store.channel(CH)
    done = store.add_message(msg("done"), channel_pk=ch.pk)
    owed = store.add_message(msg("owed"), channel_pk=ch.pk, forced=True)
    store.add_message(msg("hist"), channel_pk=ch.pk, outcome="history")
    store.add_message(msg("bot-1"), channel_pk=ch.pk, from_assistant=True)
    store.record_decision(ch.pk, DecisionRow(done, 0.1, 0.5, False, False, "r", "m", 1.0, "silent"))
    [pending] = store.pending_messages("test")
    assert (pending.pk, pending.forced, pending.message.message_id, pending.message.channel) == (owed, True, "owed", CH)
    assert pending.message.addressed and pending.message.created_at.tzinfo is not None
    assert store.pending_messages("other") == []
    reply = IncomingMessage(channel=CH, message_id="bot-2", author_id="@assistant", display_name="assistant", text="4")
    store.record_decision(ch.pk, DecisionRow(owed, 0.9, 0.5, True, True, "r", "m", 1.0, "sent"), reply)
    assert store.pending_messages() == []
    assert store.message_outcomes(ch.pk) == [
        ("done", "silent"),
        ("owed", "sent"),
        ("hist", "history"),
        ("bot-1", "own"),
        ("bot-2", "own"),
    ]
    assert store.get_message("test", "bot-2").from_assistant
    assert store.last_message_ids("test") == {"c1": "bot-2"}


def test_upgrading_a_store_with_data_keeps_it_and_decides_nothing_again(store_url: str) -> None:
    upgrade(store_url, "0001")
    engine = make_engine(store_url)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")  # as both dialects store it
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO channels (platform, channel_id, name, enabled, muted, talkativeness, history_size,"
            f" created_at, updated_at) VALUES ('test', 'c1', 'general', true, false, 50, 40, '{now}', '{now}')"
        )
        for mid, mine in [("m1", "false"), ("m2", "false"), ("r1", "true")]:
            conn.exec_driver_sql(
                "INSERT INTO messages (channel_pk, platform, platform_message_id, author_id, display_name, text,"
                f" created_at, mentions, is_bot, from_assistant) VALUES ((SELECT id FROM channels), 'test', '{mid}',"
                f" 'a', 'A', 'hi', '{now}', '[]', false, {mine})"
            )
        conn.exec_driver_sql(
            "INSERT INTO decisions (channel_pk, message_pk, created_at, p_speak, threshold, spoke, forced, runtime,"
            " model_id, latency_ms, outcome) VALUES ((SELECT id FROM channels),"
            f" (SELECT id FROM messages WHERE platform_message_id = 'm2'), '{now}', 0.9, 0.5, true, true, 'r', 'm',"
            " 1, 'sent')"
        )
    engine.dispose()
    upgrade(store_url)
    s = Store(store_url)
    ch = s.channel(CH)
    assert s.message_outcomes(ch.pk) == [("m1", "legacy"), ("m2", "legacy"), ("r1", "own")]
    assert s.pending_messages() == []
    m2 = s.get_message("test", "m2").pk
    assert [d.message_pk for d in s.decisions(ch.pk)] == [m2], "rebuilding the table kept what refers to it"
    newest = s.get_message("test", "r1").pk
    s.clear_channel(ch.pk)
    assert s.add_message(msg("new"), channel_pk=ch.pk) > newest
    s.close()
    downgrade(store_url, "0001")
    upgrade(store_url)
