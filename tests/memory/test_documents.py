"""Documents: reading and chunking, stored per channel, searched with their name, deleted for real."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

from bot.config import parse_config
from bot.domain import Attachment, ChannelRef, CommandContext
from bot.memory import Memory
from bot.memory.answer import compose
from bot.memory.documents import DocumentError, chunk, read_document
from bot.service import ConversationService
from bot.store import Store
from bot.store.migrate import upgrade
from tests.fakes import ScriptedRuntime

CH = ChannelRef("matrix", "!general:example.org", "general")
OTHER = ChannelRef("matrix", "!random:example.org", "random")
HANDBOOK = """# Office handbook

Welcome! Read this first.

## Wifi

The guest network is called Harbour and its password is seagull-77.

## Keys

Spare keys are in the grey box by reception; the box code is 9314.
"""


def test_chunks_keep_paragraphs_under_their_heading() -> None:
    chunks = chunk(HANDBOOK, max_chars=80)
    assert chunks == [
        "Office handbook\nWelcome! Read this first.",
        "Wifi\nThe guest network is called Harbour and its password is seagull-77.",
        "Keys\nSpare keys are in the grey box by reception; the box code is 9314.",
    ]
    long = chunk("word " * 500, max_chars=100)
    assert all(len(c) <= 100 for c in long) and sum(c.count("word") for c in long) == 500


def test_files_that_cannot_be_learnt_are_named(tmp_path: Path) -> None:
    for name, data, why in [
        ("a.pdf", b"%PDF", "only Markdown and plain text"),
        ("b.md", b"\xff\xfe\x00bad", "not UTF-8"),
        ("c.txt", b"  \n", "empty"),
    ]:
        (tmp_path / name).write_bytes(data)
        with pytest.raises(DocumentError, match=why) as e:
            read_document(tmp_path / name)
        assert name in str(e.value)


def raw_chunk_hits(store: Store, word: str) -> int:
    with store.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            q = "SELECT count(*) FROM memory_chunks_fts WHERE memory_chunks_fts MATCH :w"
        else:
            q = "SELECT count(*) FROM memory_chunks WHERE search_vector @@ to_tsquery('english', :w)"
        return int(conn.execute(text(q), {"w": word}).scalar())


def test_a_document_answers_in_its_channel_only_with_its_name(store: Store) -> None:
    pk, other = store.channel(CH).pk, store.channel(OTHER).pk
    store.add_document(pk, "handbook.md", chunk(HANDBOOK), source="/srv/handbook.md", added_by="Ann")
    memory = Memory(store.engine)
    [top, *_] = memory.search(pk, "what's the password for the guest wifi network?")
    assert top.document == "handbook.md" and "seagull-77" in top.text and top.link is None
    assert compose("what's the guest wifi password?", [top]).text.endswith("[handbook.md]")
    assert memory.search(other, "guest wifi password") == []
    [doc] = store.documents(pk)
    assert (doc.name, doc.chunks, doc.added_by) == ("handbook.md", 3, "Ann")


def test_relearning_replaces_and_unlearning_deletes_from_the_index(store: Store) -> None:
    pk = store.channel(CH).pk
    store.add_document(pk, "handbook.md", chunk(HANDBOOK), source="x", added_by="Ann")
    store.add_document(pk, "handbook.md", ["Wifi\nThe password is now albatross-12."], source="x", added_by="Ann")
    assert raw_chunk_hits(store, "seagull") == 0 and raw_chunk_hits(store, "albatross") == 1
    assert store.delete_document(pk, "handbook.md") and not store.delete_document(pk, "handbook.md")
    assert raw_chunk_hits(store, "albatross") == 0 and store.documents(pk) == []
    store.add_document(pk, "again.md", ["the box code is 9314"], source="x", added_by="Ann")
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM channels WHERE id = :c"), {"c": pk})
    assert raw_chunk_hits(store, "9314") == 0


def test_sqlite_files_keep_no_words_of_unlearnt_or_replaced_documents(tmp_path: Path) -> None:
    from bot.store import sqlite_url

    url = sqlite_url(tmp_path / "chime.db")
    upgrade(url)
    store = Store(url)
    pk = store.channel(CH).pk
    store.add_document(pk, "keep.md", ["The kettle is in the kitchen."], source="x", added_by="Ann")
    store.add_document(pk, "safe.md", ["The safe opens with zanzibar77."], source="x", added_by="Ann")
    store.add_document(pk, "wifi.md", ["The wifi password is quokkaberry."], source="x", added_by="Ann")
    store.add_document(pk, "wifi.md", ["The wifi password changed."], source="x", added_by="Ann")
    assert store.delete_document(pk, "safe.md")
    for name in ("chime.db", "chime.db-wal"):
        path = tmp_path / name
        data = path.read_bytes() if path.exists() else b""
        assert b"zanzibar77" not in data and b"quokkaberr" not in data, name
    assert raw_chunk_hits(store, "kettle") == 1
    store.close()


async def test_learn_command_with_a_path_in_the_console_or_an_attachment(store_url: str, tmp_path: Path) -> None:
    upgrade(store_url)
    (tmp_path / "handbook.md").write_text(HANDBOOK)
    svc = ConversationService(Store(store_url), ScriptedRuntime(0.0), parse_config({}))
    try:
        console = CommandContext(CH, "ann", "Ann", is_admin=True, local_files=True)
        assert "Learnt handbook.md (3 passages)" in await svc.run_command(console, f"learn {tmp_path / 'handbook.md'}")
        remote = CommandContext(CH, "ann", "Ann", is_admin=True)
        assert "attach it (Discord)" in await svc.run_command(remote, f"learn {tmp_path / 'handbook.md'}")
        given = Attachment("notes.txt", b"The fire exit is behind the kitchen.", "matrix event $abc")
        with_file = CommandContext(CH, "ann", "Ann", is_admin=True, attachment=given)
        assert "Learnt notes.txt (1 passages)" in await svc.run_command(with_file, "learn")
        member = CommandContext(CH, "bob", "Bob", is_admin=False, attachment=given)
        assert "only channel admins" in await svc.run_command(member, "learn")
        listing = await svc.run_command(member, "documents")
        assert "handbook.md: 3 passages, added by Ann" in listing and "notes.txt: 1 passages" in listing
        assert "Forgot the document notes.txt" in await svc.run_command(remote, "unlearn notes.txt")
    finally:
        await svc.close()


async def test_knowledge_folders_are_read_at_start(store_url: str, tmp_path: Path) -> None:
    upgrade(store_url)
    folder = tmp_path / "kb"
    (folder / "sub").mkdir(parents=True)
    (folder / "handbook.md").write_text(HANDBOOK)
    (folder / "sub" / "rota.txt").write_text("Bins go out on Tuesday night.")
    (folder / "photo.png").write_bytes(b"\x89PNG")  # not a document: skipped
    config = parse_config({"memory": {"knowledge": {CH.key: str(folder), "matrix:!gone:x": str(tmp_path / "none")}}})
    svc = ConversationService(Store(store_url), ScriptedRuntime(0.0), config)
    try:
        await svc.start()
        pk = svc.store.channel(CH).pk
        assert [d.name for d in svc.store.documents(pk)] == ["handbook.md", "sub/rota.txt"]
        assert svc.memory.search(pk, "which night do the bins go out?")[0].document == "sub/rota.txt"
    finally:
        await svc.close()


def _said(store: Store, mid: str, author: str, text: str) -> None:
    from datetime import UTC, datetime

    from bot.domain import IncomingMessage

    ch = store.channel(CH)
    store.add_message(
        IncomingMessage(CH, mid, author, author.title(), text, created_at=datetime.now(UTC)), channel_pk=ch.pk
    )


@pytest.mark.parametrize("how", ["forget-me", "deletion", "forget", "retention"])
def test_a_document_taught_from_a_message_goes_with_the_message(store: Store, how: str) -> None:
    from datetime import UTC, datetime, timedelta

    from bot.domain import message_source

    pk = store.channel(CH).pk
    _said(store, "$alarm", "@bob:x", "my home alarm code is 4455")
    _said(store, "$kettle", "@ann:x", "the kettle is in the kitchen")
    # An admin taught both messages (as `!assistant learn` replying to them does on Matrix).
    for mid, said in (("$alarm", "my home alarm code is 4455"), ("$kettle", "the kettle is in the kitchen")):
        store.add_document(pk, f"message {mid}.txt", [said], source=message_source("matrix", mid), added_by="Ann")
    if how == "forget-me":
        store.forget_author("matrix", "@bob:x")
    elif how == "deletion":
        store.delete_message("matrix", "$alarm")
    elif how == "forget":
        store.clear_channel(pk)
    else:
        store.purge_before(datetime.now(UTC) + timedelta(seconds=1))
    assert raw_chunk_hits(store, "4455") == 0
    assert Memory(store.engine).search(pk, "what was bob's alarm code?") == []
    kept = [d.name for d in store.documents(pk)]
    # Ann's message goes only where her message went too.
    assert kept == ([] if how in ("forget", "retention") else ["message $kettle.txt"])
