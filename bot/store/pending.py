"""What became of each stored message: its outcome, and the messages still owed a decision."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from bot.domain import ChannelRef, IncomingMessage, ServerFilter
from bot.store.models import Channel, Message

# A message's outcome, by key (the store's decisions set it too).
SET_OUTCOME = update(Message).where(Message.id == bindparam("pk")).values(outcome=bindparam("new_outcome"))


@dataclass(frozen=True)
class PendingMessage:
    """A stored message that never reached an outcome (a crash, or a stop while it waited)."""

    pk: int
    message: IncomingMessage
    forced: bool


class OutcomesMixin:
    """The store's outcome bookkeeping (``messages.outcome``, NULL while a decision is owed)."""

    _run: Callable[..., Any]
    _run_core: Callable[..., Any]

    def set_outcome(self, message_pk: int, outcome: str) -> None:
        """Record how a message ended (gated, superseded, ...) when no decision row says so."""

        def fn(conn: Connection) -> None:
            # Core on a plain connection: this runs for every message that is not decided.
            conn.execute(SET_OUTCOME, {"pk": message_pk, "new_outcome": outcome})

        # Not waited for on disk (see Store._wait_for_disk): lost, the message is only decided again.
        self._run_core("set_outcome", fn, durable=False)

    def pending_messages(
        self, platform: str | None = None, limit: int = 10_000, *, servers: ServerFilter | None = None
    ) -> list[PendingMessage]:
        """People's messages without an outcome, oldest first (optionally of one platform, in the servers it serves)."""

        def fn(s: Session) -> list[PendingMessage]:
            q = (
                select(Message, Channel)
                .join(Channel, Channel.id == Message.channel_pk)
                .where(Message.outcome.is_(None), Message.from_assistant.is_(False))
                .order_by(Message.id)
                .limit(limit)
            )
            if platform is not None:
                q = q.where(Message.platform == platform)
                if servers is not None:
                    q = q.where(_served(s, platform, servers))
            return [_pending(m, c) for m, c in s.execute(q)]

        return self._run("pending_messages", fn)

    def message_outcomes(self, channel_pk: int) -> list[tuple[str, str | None]]:
        """(platform message id, outcome) of every message of a channel, oldest first."""

        def fn(s: Session) -> list[tuple[str, str | None]]:
            rows = s.execute(
                select(Message.platform_message_id, Message.outcome)
                .where(Message.channel_pk == channel_pk)
                .order_by(Message.id)
            )
            return [(mid, outcome) for mid, outcome in rows]

        return self._run("message_outcomes", fn)

    def last_message_ids(self, platform: str, *, servers: ServerFilter | None = None) -> dict[str, str]:
        """Each channel of ``platform`` (in the servers it serves) with its newest stored message id (where a read-back starts)."""

        def fn(s: Session) -> dict[str, str]:
            newest = select(func.max(Message.id)).where(Message.platform == platform).group_by(Message.channel_pk)
            q = (
                select(Channel.channel_id, Message.platform_message_id)
                .join(Channel, Channel.id == Message.channel_pk)
                .where(Message.id.in_(newest))
            )
            if servers is not None:
                q = q.where(_served(s, platform, servers))
            return {cid: mid for cid, mid in s.execute(q)}

        return self._run("last_message_ids", fn)


def _served(s: Session, platform: str, servers: ServerFilter) -> ColumnElement[bool]:
    """The condition on ``Channel`` that keeps the channels of the servers ``servers`` accepts."""
    known = s.scalars(
        select(Channel.server_id).where(Channel.platform == platform, Channel.server_id.is_not(None)).distinct()
    ).all()
    kept = Channel.server_id.in_([server for server in known if servers(server)])
    # Channels without a server: direct messages, and channels not seen since servers were recorded.
    return or_(kept, Channel.server_id.is_(None)) if servers(None) else kept


def _pending(m: Message, c: Channel) -> PendingMessage:
    msg = IncomingMessage(
        channel=ChannelRef(c.platform, c.channel_id, c.name, c.server_id),
        message_id=m.platform_message_id,
        author_id=m.author_id,
        display_name=m.display_name,
        text=m.text,
        created_at=m.created_at,
        reply_to=m.reply_to,
        mentions=tuple(m.mentions or ()),
        is_bot=m.is_bot,
        # The platform's own "addressed" is not stored; that a reply was owed is.
        addressed=m.forced,
    )
    return PendingMessage(pk=m.id, message=msg, forced=m.forced)
