"""The store's tables as SQLAlchemy 2.x typed ORM models (the schema the migrations build)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _WithoutNul:
    """Drops NUL characters on the way in: PostgreSQL refuses them in text, so every backend stores text without."""

    def process_bind_param(self, value: str | None, dialect: object) -> str | None:
        return value.replace("\x00", "") if isinstance(value, str) else value


class NulFreeString(_WithoutNul, TypeDecorator[str]):
    """A VARCHAR that never holds NUL."""

    impl = String
    cache_ok = True


class NulFreeText(_WithoutNul, TypeDecorator[str]):
    """A TEXT that never holds NUL."""

    impl = Text
    cache_ok = True


class Base(DeclarativeBase):
    pass


class Channel(Base):
    """A channel the bot has seen, with its per-channel settings."""

    __tablename__ = "channels"
    __table_args__ = (
        UniqueConstraint("platform", "channel_id", name="uq_channels_platform_channel"),
        Index("ix_channels_server", "platform", "server_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(NulFreeString(32))
    channel_id: Mapped[str] = mapped_column(NulFreeString(255))
    name: Mapped[str] = mapped_column(NulFreeString(255), default="")
    # The server (Discord guild) the channel belongs to; NULL for direct messages, platforms
    # without servers, and channels stored before it was recorded (until seen again).
    server_id: Mapped[str | None] = mapped_column(NulFreeString(255), nullable=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    muted: Mapped[bool] = mapped_column(Boolean, default=False)
    talkativeness: Mapped[int] = mapped_column(Integer, default=50)
    history_size: Mapped[int] = mapped_column(Integer, default=40)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Message(Base):
    """A message seen in a channel, a person's or the bot's own reply."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("platform", "platform_message_id", name="uq_messages_platform_message"),
        Index("ix_messages_channel_order", "channel_pk", "id"),
        Index("ix_messages_author", "platform", "author_id"),
        Index("ix_messages_created", "created_at"),
        Index("ix_messages_outcome", "outcome", "id"),
        # SQLite would otherwise give a new row the id of a deleted newest one: ids must
        # only grow, since decisions are taken in id order (PostgreSQL sequences only grow).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_pk: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(NulFreeString(32))
    platform_message_id: Mapped[str] = mapped_column(NulFreeString(255))
    author_id: Mapped[str] = mapped_column(NulFreeString(255))
    display_name: Mapped[str] = mapped_column(NulFreeString(255))
    text: Mapped[str] = mapped_column(NulFreeText)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reply_to: Mapped[str | None] = mapped_column(NulFreeString(255), nullable=True)
    mentions: Mapped[list[str]] = mapped_column(JSON, default=list)
    is_bot: Mapped[bool] = mapped_column(Boolean, default=False)
    # True for the assistant's own replies (they become assistant turns in the window).
    from_assistant: Mapped[bool] = mapped_column(Boolean, default=False)
    # A reply was owed when it was stored (a mention, "@name", a reply to the bot, a DM).
    forced: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # How the message ended (bot/outcomes.py); NULL while its decision is still owed.
    outcome: Mapped[str | None] = mapped_column(String(32), nullable=True)


class DecisionRecord(Base):
    """One decision the bot made: p_speak against the threshold, and what it did."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_channel", "channel_pk", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_pk: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    # The message decided on; NULL once that message is deleted or forgotten.
    message_pk: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    p_speak: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    spoke: Mapped[bool] = mapped_column(Boolean)
    forced: Mapped[bool] = mapped_column(Boolean)
    runtime: Mapped[str] = mapped_column(NulFreeString(64))
    model_id: Mapped[str] = mapped_column(NulFreeString(512))
    latency_ms: Mapped[float] = mapped_column(Float)
    # "sent", "superseded", "send_failed", "error", "silent"
    outcome: Mapped[str] = mapped_column(NulFreeString(32), default="silent")


class DecisionLabel(Base):
    """A judgement on one decision from someone in the room, such as a false interruption (a 👎 on an unasked reply)."""

    __tablename__ = "decision_labels"
    # One label of a kind per person and decision: the same reaction twice counts once.
    __table_args__ = (
        UniqueConstraint("decision_pk", "author_id", "kind", name="uq_decision_labels_decision_author_kind"),
        Index("ix_decision_labels_author", "platform", "author_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    decision_pk: Mapped[int] = mapped_column(ForeignKey("decisions.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    platform: Mapped[str] = mapped_column(NulFreeString(32))
    # Who gave it (a platform user id): forget-me deletes their labels too.
    author_id: Mapped[str] = mapped_column(NulFreeString(255))
    # The platform id of what carried it (a Matrix reaction event), so that its redaction removes the label.
    source_id: Mapped[str | None] = mapped_column(NulFreeString(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ForgottenMessage(Base):
    """A tombstone: a deleted message's platform id (no content), so it is never stored again."""

    __tablename__ = "forgotten_messages"

    platform: Mapped[str] = mapped_column(String(32), primary_key=True)
    platform_message_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    forgotten_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PlatformState(Base):
    """Small per-platform key/value state, such as Matrix's sync token."""

    __tablename__ = "platform_state"

    platform: Mapped[str] = mapped_column(NulFreeString(32), primary_key=True)
    key: Mapped[str] = mapped_column(NulFreeString(255), primary_key=True)
    value: Mapped[str] = mapped_column(NulFreeText)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ReplySource(Base):
    """A message that one of the assistant's replies quotes or rests on (deleting it deletes the reply)."""

    __tablename__ = "reply_sources"

    reply_pk: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True)
    source_pk: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True, index=True)


class MemoryDocument(Base):
    """A document a channel knows (taught by an admin or read from its knowledge folder)."""

    __tablename__ = "memory_documents"
    __table_args__ = (UniqueConstraint("channel_pk", "name", name="uq_memory_documents_channel_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_pk: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(NulFreeString(255))
    # Where it came from: a file path, "discord attachment 123", "matrix message $id" (bot.domain.message_source).
    source: Mapped[str] = mapped_column(NulFreeString(1024))
    added_by: Mapped[str] = mapped_column(NulFreeString(255))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MemoryChunk(Base):
    """A few paragraphs of a document, as the memory index searches them."""

    __tablename__ = "memory_chunks"
    __table_args__ = (
        Index("ix_memory_chunks_document", "document_pk", "position"),
        Index("ix_memory_chunks_channel", "channel_pk"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_pk: Mapped[int] = mapped_column(ForeignKey("memory_documents.id", ondelete="CASCADE"))
    # The document's channel again, so that a search never leaves it.
    channel_pk: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(NulFreeText)
