"""The memory index on SQLite and PostgreSQL: what it finds, its strict scope, and that deletions reach it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from bot.domain import ChannelRef, IncomingMessage
from bot.memory import Memory
from bot.store import Store
from bot.store.migrate import downgrade, upgrade

CH = ChannelRef("matrix", "!general:example.org", "general")
OTHER = ChannelRef("matrix", "!random:example.org", "random")
DM = ChannelRef("matrix", "!dm-jonas:example.org", "Jonas")
T0 = datetime(2026, 11, 12, 18, 30, tzinfo=UTC)

CHATTER = [
    "anyone up for lunch tomorrow?",
    "the build is green again",
    "I'll be late, the train is stuck",
    "did you see the match last night",
    "the new router arrived today, setting it up tonight",
    "coffee machine on floor 2 is broken again",
]


def msg(mid: str, body: str, channel: ChannelRef = CH, author: str = "jonas", at: datetime = T0) -> IncomingMessage:
    return IncomingMessage(
        channel=channel, message_id=mid, author_id=f"@{author}:example.org", display_name=author.title(),
        text=body, created_at=at,
    )  # fmt: skip


def fill(store: Store, channel: ChannelRef, prefix: str, pk: int | None = None) -> int:
    """A channel with chatter (``pk``: an existing one); returns its key."""
    pk = pk or store.channel(channel).pk
    for i, line in enumerate(CHATTER):
        store.add_message(msg(f"{prefix}{i}", line, channel, "ann", T0 - timedelta(hours=i + 1)), channel_pk=pk)
    return pk


def ids(passages) -> list[str]:  # noqa: ANN001
    return [p.message_id for p in passages]


def test_finds_the_message_that_states_the_fact_with_its_source(store: Store) -> None:
    pk = fill(store, CH, "$g")
    store.add_message(msg("$wifi", "the wifi password for the office is bluefish42"), channel_pk=pk)
    found = Memory(store.engine).search(pk, "@assistant what was the wifi password again?", k=3)
    top = found[0]
    assert top.message_id == "$wifi"
    assert top.text == "the wifi password for the office is bluefish42"
    assert (top.author, top.author_id, top.created_at) == ("Jonas", "@jonas:example.org", T0)
    assert top.link == "https://matrix.to/#/!general:example.org/$wifi"
    assert set(top.matched) == {"wifi", "password"} and top.coverage == 1.0


def test_a_word_form_and_the_author_name_are_found(store: Store) -> None:
    pk = fill(store, CH, "$g")
    store.add_message(msg("$r", "booked the restaurant on Friday, Luigi's at 8"), channel_pk=pk)
    found = Memory(store.engine).search(pk, "which restaurants did Jonas book?", k=3)
    assert found[0].message_id == "$r"
    assert {"restaurants", "jonas", "book"} <= set(found[0].matched)


def test_a_word_held_only_in_another_form_or_only_the_persons_name_covers_less(store: Store) -> None:
    pk = fill(store, CH, "$g")
    store.add_message(msg("$plural", "the book club reads Dune, books are at the library"), channel_pk=pk)
    store.add_message(msg("$stem", "I booked a table at Casa Miguel for friday"), channel_pk=pk)
    store.add_message(msg("$hiro", "+1", author="hiro"), channel_pk=pk)
    memory = Memory(store.engine)
    found = {p.message_id: p for p in memory.search(pk, "which books are we reading for book club?", k=5)}
    # "booked" is found (the index stems it) but counts half; "books"/"book" is the same word.
    assert found["$stem"].coverage < found["$plural"].coverage / 2
    # A message by the person asked about that shares nothing else with the question.
    hiro = {p.message_id: p for p in memory.search(pk, "which flight number is Hiro on?", k=5)}
    assert hiro["$hiro"].coverage == 0.0


def test_scope_is_the_channel_never_another_nor_a_dm(store: Store) -> None:
    pk = fill(store, CH, "$g")
    other = fill(store, OTHER, "$o")
    dm = store.channel(DM).pk
    store.add_message(msg("$o-gate", "the gate code is 4471", OTHER), channel_pk=other)
    store.add_message(msg("$dm-gate", "my gate code is 9090, keep it secret", DM), channel_pk=dm)
    memory = Memory(store.engine)
    assert memory.search(pk, "what is the gate code?") == []
    assert ids(memory.search(other, "what is the gate code?")) == ["$o-gate"]
    assert ids(memory.search(dm, "what is the gate code?")) == ["$dm-gate"]
    # Chatter shared word for word by two channels comes back from the asking channel only.
    assert set(ids(memory.search(pk, "router arrived", k=10))) == {"$g4"}


def test_the_assistants_own_replies_are_not_indexed(store: Store) -> None:
    pk = store.channel(CH).pk
    store.add_message(msg("$own", "I think the wifi password is hunter2"), channel_pk=pk, from_assistant=True)
    assert Memory(store.engine).search(pk, "wifi password") == []


def test_an_edit_or_redaction_replaces_what_is_indexed(store: Store) -> None:
    pk = fill(store, CH, "$g")
    store.add_message(msg("$m", "deadline is the 14th"), channel_pk=pk)
    store.edit_message("matrix", "$m", "deadline moved to the 21st", T0 + timedelta(minutes=5))
    memory = Memory(store.engine)
    assert memory.search(pk, "14th") == []
    assert [p.text for p in memory.search(pk, "when is the deadline?")] == ["deadline moved to the 21st"]
    store.edit_message("matrix", "$m", "", T0 + timedelta(minutes=6))  # an edit that empties it
    assert memory.search(pk, "deadline") == []


def raw_hits(store: Store, word: str) -> int:
    """Rows the full-text index itself still holds for ``word`` (all channels)."""
    with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            q = "SELECT count(*) FROM memory_messages_fts WHERE memory_messages_fts MATCH :w"
        else:
            q = "SELECT count(*) FROM messages WHERE search_vector @@ to_tsquery('english', :w)"
        return int(conn.execute(text(q), {"w": word}).scalar())


@pytest.mark.parametrize("how", ["delete", "forget", "forget-me", "retention"])
def test_deletions_leave_nothing_in_the_index(store: Store, how: str) -> None:
    pk = fill(store, CH, "$g")
    old = T0 - timedelta(days=400)
    store.add_message(msg("$secret", "locker combination is zanzibar77", at=old), channel_pk=pk)
    assert raw_hits(store, "zanzibar77") == 1
    if how == "delete":
        store.delete_message("matrix", "$secret")
    elif how == "forget":
        store.clear_channel(pk)
    elif how == "forget-me":
        store.forget_author("matrix", "@jonas:example.org")
    else:
        store.purge_before(T0 - timedelta(days=30))
    assert raw_hits(store, "zanzibar77") == 0
    assert Memory(store.engine).search(pk, "locker combination") == []
    # A tombstoned message delivered again is not stored, so not indexed either.
    store.add_message(msg("$secret", "locker combination is zanzibar77"), channel_pk=pk)
    assert raw_hits(store, "zanzibar77") == 0


def test_deleting_a_channel_row_cascades_into_the_index(store: Store) -> None:
    pk = fill(store, CH, "$g")
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM channels WHERE id = :c"), {"c": pk})
    assert raw_hits(store, "router") == 0


def test_the_migration_indexes_history_stored_before_it(store_url: str) -> None:
    upgrade(store_url, "0004")
    store = Store(store_url)
    # The channel as that schema has it (the ORM model has columns of later revisions).
    with store.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO channels (platform, channel_id, name, enabled, muted, talkativeness, history_size,"
                " created_at, updated_at) VALUES (:p, :c, 'general', true, false, 50, 40, :t, :t)"
            ),
            {"p": CH.platform, "c": CH.channel_id, "t": T0},
        )
        pk = conn.execute(text("SELECT id FROM channels")).scalar_one()
    pk = fill(store, CH, "$g", pk)
    store.add_message(msg("$old", "the printer code is 5512"), channel_pk=pk)
    store.add_message(msg("$mine", "the printer code is 0000"), channel_pk=pk, from_assistant=True)
    store.close()
    upgrade(store_url)
    store = Store(store_url)
    try:
        assert ids(Memory(store.engine).search(pk, "printer code")) == ["$old"]
        downgrade(store_url, "0004")
        assert store.all_messages(pk)[-1].text == "the printer code is 0000"  # the messages stay
    finally:
        store.close()


def test_a_question_of_only_filler_searches_nothing(store: Store) -> None:
    pk = fill(store, CH, "$g")
    assert Memory(store.engine).search(pk, "@assistant what did we say again?") == []


def test_remembered_word_counts_never_hide_a_message_said_since(store: Store) -> None:
    pk = fill(store, CH, "$g")
    store.add_message(msg("$door", "the code for the bike room door is 1234"), channel_pk=pk)
    memory = Memory(store.engine)
    # "gate": said nowhere yet; "code": counted and remembered.
    assert ids(memory.search(pk, "what's the gate code?")) == ["$door"]
    store.add_message(msg("$gate", "the gate opens with 4411", author="ann"), channel_pk=pk)
    store.add_message(msg("$gate2", "new gate code: 9090", author="ann"), channel_pk=pk)
    # The same memory, within a minute: both new messages are found.
    assert set(ids(memory.search(pk, "what's the gate code?"))) == {"$door", "$gate", "$gate2"}


def test_sqlite_files_keep_no_deleted_words(tmp_path) -> None:  # noqa: ANN001
    from bot.store import sqlite_url

    url = sqlite_url(tmp_path / "chime.db")
    upgrade(url)
    store = Store(url)
    pk = fill(store, CH, "$g")
    for i in range(30):  # several index segments, so the word is not only in the newest
        store.add_message(msg(f"$x{i}", f"filler {i} about zanzibar77 and quokkaberry"), channel_pk=pk)
        store.add_message(msg(f"$y{i}", f"other words {i}", author="ann"), channel_pk=pk)
    store.forget_author("matrix", "@jonas:example.org")
    for name in ("chime.db", "chime.db-wal"):
        path = tmp_path / name
        data = path.read_bytes() if path.exists() else b""
        assert b"zanzibar77" not in data and b"quokkaberri" not in data and b"quokkaberry" not in data, name
    assert Memory(store.engine).search(pk, "other words", k=1)[0].author == "Ann"
    store.close()


def test_a_discord_source_is_a_jump_link_with_its_server(store: Store) -> None:
    ref = ChannelRef("discord", "222", "general")
    pk = store.channel(ref).pk
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE channels SET server_id = '111' WHERE id = :c"), {"c": pk})
    store.add_message(msg("333", "the wifi password is bluefish42", ref), channel_pk=pk)
    [found] = Memory(store.engine).search(pk, "wifi password")
    assert found.link == "https://discord.com/channels/111/222/333"


def test_a_batch_skips_known_and_forgotten_messages_and_is_indexed(store: Store) -> None:
    pk = store.channel(CH).pk
    store.add_message(msg("$a", "first"), channel_pk=pk)
    store.delete_message("matrix", "$gone")
    batch = [msg("$a", "again"), msg("$gone", "deleted before"), msg("$b", "the locker code is 5151")]
    assert store.add_messages(batch, channel_pk=pk) == 1
    assert [m.text for m in store.all_messages(pk)] == ["first", "the locker code is 5151"]
    assert ids(Memory(store.engine).search(pk, "locker code")) == ["$b"]


def test_a_number_equal_to_the_channel_key_matches_only_the_messages_that_say_it(store: Store) -> None:
    from bot.memory.lexical import MESSAGES, index_for

    pk = fill(store, CH, "$g")
    store.add_message(msg("$gate", f"the gate code is {pk} then star"), channel_pk=pk)
    index = index_for(store.engine.dialect.name)
    with store.engine.connect() as conn:
        assert index.doc_freqs(conn, MESSAGES, pk, [str(pk), "gate"]) == {str(pk): 1, "gate": 1}
        assert index.candidates(conn, MESSAGES, pk, [str(pk)], 10) == [store.get_message("matrix", "$gate").pk]
