"""Rebuilding the memory index from the stored messages and chunks (``chime memory rebuild``)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from bot.store.models import MemoryChunk, Message

BATCH = 2000
Progress = Callable[[int, int], None]


def rebuild_index(engine: Engine, channel_pk: int | None = None, progress: Progress | None = None) -> int:
    """Index again every message (and chunk) of one channel, or of all; returns the rows indexed.

    SQLite: the whole index is emptied and refilled (or, for one channel, each of its rows is
    taken out and put back). PostgreSQL's index is a generated column, always current: its
    rows are only counted.
    """
    where = [Message.from_assistant.is_(False)] + ([Message.channel_pk == channel_pk] if channel_pk else [])
    with engine.begin() as conn:
        total = conn.scalar(select(func.count(Message.id)).where(*where)) or 0
    if engine.dialect.name != "sqlite":
        if progress:
            progress(total, total)
        return total
    done, last = 0, 0
    if channel_pk is None:
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO memory_messages_fts(memory_messages_fts) VALUES ('delete-all')"))
            conn.execute(text("INSERT INTO memory_chunks_fts(memory_chunks_fts) VALUES ('rebuild')"))
    while True:
        with engine.begin() as conn:
            ids = conn.scalars(
                select(Message.id).where(*where, Message.id > last).order_by(Message.id).limit(BATCH)
            ).all()
            if not ids:
                break
            cols = "rowid, text, display_name, channel_pk"
            if channel_pk is not None:  # in step with the table (its triggers): out, then in again
                conn.execute(
                    text(f"INSERT INTO memory_messages_fts(memory_messages_fts, {cols}) SELECT 'delete', id, "
                         "text, display_name, channel_pk FROM messages WHERE id >= :a AND id <= :b AND channel_pk = :c "
                         "AND from_assistant = 0"),
                    {"a": ids[0], "b": ids[-1], "c": channel_pk},
                )  # fmt: skip
            conn.execute(
                text(f"INSERT INTO memory_messages_fts({cols}) SELECT id, text, display_name, channel_pk FROM messages "
                     "WHERE id IN (" + ",".join(str(int(i)) for i in ids) + ")"),
            )  # fmt: skip
        done, last = done + len(ids), ids[-1]
        if progress:
            progress(done, total)
    return done


def chunk_count(engine: Engine, channel_pk: int | None = None) -> int:
    """The stored document chunks of one channel, or of all."""
    where = [MemoryChunk.channel_pk == channel_pk] if channel_pk else []
    with engine.begin() as conn:
        return int(conn.scalar(select(func.count(MemoryChunk.id)).where(*where)) or 0)
