"""Forgetting for real: deletions leave a tombstone (platform + message id, no content) and no readable text."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import ColumnElement, bindparam, delete, exists, insert, literal, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.domain import message_source, utcnow
from bot.store.feedback import delete_labels_carried_by, delete_labels_from
from bot.store.models import (
    Channel,
    DecisionRecord,
    ForgottenMessage,
    MemoryChunk,
    MemoryDocument,
    Message,
    ReplySource,
)

log = logging.getLogger(__name__)
# The SQLite memory indexes (migrations 0007 and 0011), rewritten after deletions.
MEMORY_FTS = "memory_messages_fts"
CHUNKS_FTS = "memory_chunks_fts"
T = TypeVar("T")


# Stored before, or deleted before (tombstoned): one prepared statement, asked for every
# message that arrives (bound as ``platform`` and ``message_id``).
KNOWN = select(
    exists().where(Message.platform == bindparam("platform"), Message.platform_message_id == bindparam("message_id"))
    | exists().where(
        ForgottenMessage.platform == bindparam("platform"),
        ForgottenMessage.platform_message_id == bindparam("message_id"),
    )
)


def is_forgotten(s: Session, platform: str, message_id: str) -> bool:
    """Whether a message with this platform id was deleted (it must never be stored again)."""
    return s.get(ForgottenMessage, (platform, message_id)) is not None


def _delete_taught_documents(s: Session, sources: list[str]) -> int:
    """Delete the documents taught from these messages (``message_source``), chunks first; returns how many."""
    n = 0
    for start in range(0, len(sources), 500):  # bounded IN lists
        docs = select(MemoryDocument.id).where(MemoryDocument.source.in_(sources[start : start + 500]))
        # Chunks first: SQLite's triggers take them out of the index one by one.
        s.execute(delete(MemoryChunk).where(MemoryChunk.document_pk.in_(docs)))
        n += s.execute(delete(MemoryDocument).where(MemoryDocument.id.in_(docs))).rowcount
    return n


class Deleted(NamedTuple):
    """What a deletion took: people's messages, and documents taught from them."""

    messages: int
    documents: int


def _delete_messages(s: Session, where: ColumnElement[bool]) -> Deleted:
    """Tombstone, then delete, the messages matching ``where`` and the documents taught from them."""
    rows = s.execute(select(Message.platform, Message.platform_message_id).where(where))
    documents = _delete_taught_documents(s, [message_source(p, m) for p, m in rows])
    # The assistant's replies that quote these messages (or rest on them) go with them.
    quoting = s.scalars(
        select(ReplySource.reply_pk).where(ReplySource.source_pk.in_(select(Message.id).where(where)))
    ).all()
    n = _tombstone_and_delete(s, where)
    if quoting:
        _tombstone_and_delete(s, Message.id.in_(quoting))
    return Deleted(n, documents)


def _tombstone_and_delete(s: Session, where: ColumnElement[bool]) -> int:
    """Tombstone, then delete, the messages matching ``where``; returns how many."""
    s.execute(
        insert(ForgottenMessage).from_select(
            ["platform", "platform_message_id", "forgotten_at"],
            select(Message.platform, Message.platform_message_id, literal(utcnow(), ForgottenMessage.forgotten_at.type))
            .where(where)
            .where(~exists().where(
                ForgottenMessage.platform == Message.platform,
                ForgottenMessage.platform_message_id == Message.platform_message_id,
            )),
        )
    )  # fmt: skip
    return s.execute(delete(Message).where(where)).rowcount


class ForgettingMixin:
    """The store's deletions: ``forget``, ``forget-me``, retention and single deletions."""

    engine: Engine
    _run: Callable[..., Any]

    def delete_message(self, platform: str, message_id: str) -> bool:
        """Delete a message for real and tombstone its id (even if it is not stored yet); False when unknown.

        A deleted reaction (a Matrix redaction names only the event) takes the label it carried with it.
        """

        def fn(s: Session) -> Deleted:
            delete_labels_carried_by(s, platform, message_id)
            deleted = _delete_messages(s, (Message.platform == platform) & (Message.platform_message_id == message_id))
            if not deleted.messages and not is_forgotten(s, platform, message_id):
                # A deletion can come before the message (a read-back in another order): keep it out.
                s.add(ForgottenMessage(platform=platform, platform_message_id=message_id, forgotten_at=utcnow()))
            return deleted

        deleted = self._run("delete_message", fn)
        self._rewrite_indexes(deleted.messages > 0, deleted.documents > 0)
        return deleted.messages > 0

    def clear_channel(self, channel_pk: int) -> int:
        """Delete a channel's messages and decisions; returns the number of messages deleted."""

        def fn(s: Session) -> Deleted:
            s.execute(delete(DecisionRecord).where(DecisionRecord.channel_pk == channel_pk))
            return _delete_messages(s, Message.channel_pk == channel_pk)

        deleted = self._run("clear_channel", fn)
        self._rewrite_indexes(True, deleted.documents > 0)
        return deleted.messages

    def forget_author(self, platform: str, author_id: str) -> int:
        """Delete every message a person wrote on a platform, the decisions on them, and the labels they gave."""

        def fn(s: Session) -> Deleted:
            delete_labels_from(s, platform, author_id)
            ids = select(Message.id).where(Message.platform == platform, Message.author_id == author_id)
            s.execute(delete(DecisionRecord).where(DecisionRecord.message_pk.in_(ids)))
            return _delete_messages(s, (Message.platform == platform) & (Message.author_id == author_id))

        deleted = self._run("forget_author", fn)
        self._rewrite_indexes(True, deleted.documents > 0)
        return deleted.messages

    def author_channel_keys(self, platform: str, author_id: str) -> list[str]:
        """The keys (``platform:channel_id``) of the channels where a person has stored messages."""

        def fn(s: Session) -> list[str]:
            rows = s.execute(
                select(Channel.platform, Channel.channel_id)
                .join(Message, Message.channel_pk == Channel.id)
                .where(Message.platform == platform, Message.author_id == author_id)
                .distinct()
            )
            return [f"{p}:{c}" for p, c in rows]

        return self._run("author_channel_keys", fn)

    def purge_before(self, cutoff: datetime) -> tuple[int, int]:
        """Delete messages and decisions older than ``cutoff``; returns (messages, decisions)."""

        def fn(s: Session) -> tuple[Deleted, int]:
            d = s.execute(delete(DecisionRecord).where(DecisionRecord.created_at < cutoff)).rowcount
            return _delete_messages(s, Message.created_at < cutoff), d

        deleted, d = self._run("purge_before", fn)
        self._rewrite_indexes(deleted.messages > 0, deleted.documents > 0)
        return deleted.messages, d

    def is_known(self, platform: str, message_id: str) -> bool:
        """Whether a message was stored or deleted before (a read-back stops at the first known one)."""

        def fn(s: Session) -> bool:
            return bool(s.connection().execute(KNOWN, {"platform": platform, "message_id": message_id}).scalar())

        return self._run("is_known", fn)

    def _rewrite_indexes(self, messages: bool, documents: bool) -> None:
        """After deletions on SQLite: rewrite the indexes that held deleted text, and empty the log."""
        if messages:
            self.checkpoint()
        if documents:
            self.checkpoint(CHUNKS_FTS)

    def checkpoint(self, index: str = MEMORY_FTS) -> None:
        """On SQLite, rewrite a memory index (the messages' by default) and empty the write-ahead log.

        So deleted text is left in neither.
        """
        if self.engine.url.get_backend_name() != "sqlite":
            return
        try:
            with self.engine.connect() as conn:
                # FTS5 records a deletion as a marker beside the old entry: merging every
                # segment into one drops both (the freed pages are zeroed: secure_delete).
                if conn.exec_driver_sql(f"SELECT 1 FROM sqlite_master WHERE name = '{index}'").first():
                    conn.exec_driver_sql(f"INSERT INTO {index}({index}) VALUES ('optimize')")
                    conn.commit()
                busy, _, _ = conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
        except Exception as e:  # the deletion itself is committed; the log empties at the next checkpoint
            log.warning("store: index rewrite or WAL checkpoint after a deletion failed: %s", e)
            return
        if busy:
            log.warning("store: WAL checkpoint after a deletion was blocked by a reader; it is retried at the next one")
