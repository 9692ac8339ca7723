"""The documents a channel knows, stored as chunks that the memory index searches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from bot.domain import utcnow
from bot.store.forget import CHUNKS_FTS
from bot.store.models import MemoryChunk, MemoryDocument


@dataclass(frozen=True)
class DocumentInfo:
    """A stored document: its name, where it came from, who added it, when, and its chunks."""

    name: str
    source: str
    added_by: str
    added_at: datetime
    chunks: int


class DocumentsMixin:
    """The store's documents: add (replacing one of the same name), list, delete."""

    _run: Callable[..., Any]
    checkpoint: Callable[[str], None]

    def add_document(self, channel_pk: int, name: str, chunks: list[str], *, source: str, added_by: str) -> int:
        """Store a document's chunks for a channel, replacing a document of the same name; returns its chunks."""
        if not chunks:
            raise ValueError(f"document {name!r} has no text")

        def fn(s: Session) -> tuple[int, bool]:
            replaced = s.execute(
                delete(MemoryDocument).where(MemoryDocument.channel_pk == channel_pk, MemoryDocument.name == name)
            ).rowcount
            doc = MemoryDocument(channel_pk=channel_pk, name=name, source=source, added_by=added_by, added_at=utcnow())
            s.add(doc)
            s.flush()
            s.add_all(
                MemoryChunk(document_pk=doc.id, channel_pk=channel_pk, position=i, text=text)
                for i, text in enumerate(chunks)
            )
            return len(chunks), replaced > 0

        n, replaced = self._run("add_document", fn)
        if replaced:  # the old text must not stay in the index or the log
            self.checkpoint(CHUNKS_FTS)
        return n

    def documents(self, channel_pk: int) -> list[DocumentInfo]:
        """The channel's documents, by name."""

        def fn(s: Session) -> list[DocumentInfo]:
            rows = s.execute(
                select(MemoryDocument, func.count(MemoryChunk.id))
                .outerjoin(MemoryChunk, MemoryChunk.document_pk == MemoryDocument.id)
                .where(MemoryDocument.channel_pk == channel_pk)
                .group_by(MemoryDocument.id)
                .order_by(MemoryDocument.name)
            ).all()
            return [DocumentInfo(d.name, d.source, d.added_by, d.added_at, n) for d, n in rows]

        return self._run("documents", fn)

    def delete_document(self, channel_pk: int, name: str) -> bool:
        """Delete a channel's document and its chunks; False when there is none by that name."""

        def fn(s: Session) -> bool:
            doc = s.scalar(
                select(MemoryDocument).where(MemoryDocument.channel_pk == channel_pk, MemoryDocument.name == name)
            )
            if doc is None:
                return False
            # Chunks first: SQLite's triggers take them out of the index one by one.
            s.execute(delete(MemoryChunk).where(MemoryChunk.document_pk == doc.id))
            s.delete(doc)
            return True

        deleted = self._run("delete_document", fn)
        if deleted:
            self.checkpoint(CHUNKS_FTS)
        return deleted
