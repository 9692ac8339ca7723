"""Labels from the room on the bot's decisions (a 👎 on an unasked reply), and the decision log admins read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from bot import outcomes
from bot.domain import utcnow
from bot.store.models import DecisionLabel, DecisionRecord, Message

# The one label kind so far: the bot spoke unasked, and someone in the room said it should not have.
FALSE_INTERRUPTION = "false_interruption"

# What became of a label: recorded now, recorded before (the same person's reaction twice),
# or refused because the message is no reply of the bot's that it chose to send on its own.
RECORDED = "recorded"
DUPLICATE = "duplicate"
NOT_A_REPLY = "not_a_reply"  # unknown, or a person's message: people are not labelled
FORCED = "forced"  # someone asked for that reply: it cannot have been an interruption
NO_DECISION = "no_decision"  # the message it answered was deleted or forgotten, and its decision with it


@dataclass(frozen=True)
class LoggedDecision:
    """One decision as ``why`` shows it: how close it came, what the bot did, and what the room said."""

    created_at: datetime
    p_speak: float
    threshold: float
    forced: bool
    outcome: str
    labels: int
    # Who wrote the message decided on, and its text ("" once it was deleted or forgotten).
    author: str
    text: str


class FeedbackMixin:
    """The store's decision labels: recorded from reactions, read by ``why`` and the labelled export."""

    _run: Callable[..., Any]

    def label_reply(
        self, platform: str, reply_id: str, author_id: str, kind: str = FALSE_INTERRUPTION, source_id: str | None = None
    ) -> str:
        """Label the decision that sent the reply ``reply_id``; returns RECORDED, DUPLICATE or why it was refused."""

        def fn(s: Session) -> str:
            found = _decision_of_reply(s, platform, reply_id)
            if isinstance(found, str):
                return found
            exists = s.scalar(
                select(DecisionLabel.id).where(
                    DecisionLabel.decision_pk == found.id,
                    DecisionLabel.author_id == author_id,
                    DecisionLabel.kind == kind,
                )
            )
            if exists is not None:
                return DUPLICATE
            s.add(
                DecisionLabel(
                    decision_pk=found.id,
                    kind=kind,
                    platform=platform,
                    author_id=author_id,
                    source_id=source_id,
                    created_at=utcnow(),
                )
            )
            return RECORDED

        try:
            return self._run("label_reply", fn)
        except IntegrityError:
            # The same reaction delivered twice at once: the first one counted.
            return DUPLICATE

    def unlabel_reply(self, platform: str, reply_id: str, author_id: str, kind: str = FALSE_INTERRUPTION) -> bool:
        """Remove a person's label from the decision that sent ``reply_id`` (they took their reaction back)."""

        def fn(s: Session) -> bool:
            found = _decision_of_reply(s, platform, reply_id)
            if isinstance(found, str):
                return False
            res = s.execute(
                delete(DecisionLabel).where(
                    DecisionLabel.decision_pk == found.id,
                    DecisionLabel.author_id == author_id,
                    DecisionLabel.kind == kind,
                )
            )
            return res.rowcount > 0

        return self._run("unlabel_reply", fn)

    def labelled_messages(self, channel_pk: int, kind: str = FALSE_INTERRUPTION) -> set[int]:
        """The keys of the channel's messages whose decision carries a label of ``kind``."""

        def fn(s: Session) -> set[int]:
            rows = s.scalars(
                select(DecisionRecord.message_pk)
                .join(DecisionLabel, DecisionLabel.decision_pk == DecisionRecord.id)
                .where(DecisionRecord.channel_pk == channel_pk, DecisionLabel.kind == kind)
                .where(DecisionRecord.message_pk.is_not(None))
                .distinct()
            )
            return set(rows)

        return self._run("labelled_messages", fn)

    def decision_log(self, channel_pk: int, limit: int = 10) -> list[LoggedDecision]:
        """The channel's last ``limit`` decisions, newest first, with their label counts and messages."""

        def fn(s: Session) -> list[LoggedDecision]:
            labels = (
                select(func.count(DecisionLabel.id))
                .where(DecisionLabel.decision_pk == DecisionRecord.id)
                .scalar_subquery()
            )
            rows = s.execute(
                select(DecisionRecord, labels, Message.display_name, Message.text)
                .outerjoin(Message, Message.id == DecisionRecord.message_pk)
                .where(DecisionRecord.channel_pk == channel_pk)
                .order_by(DecisionRecord.id.desc())
                .limit(limit)
            )
            return [
                LoggedDecision(
                    d.created_at, d.p_speak, d.threshold, d.forced, d.outcome, int(n), name or "", text or ""
                )
                for d, n, name, text in rows
            ]

        return self._run("decision_log", fn)


def _decision_of_reply(s: Session, platform: str, reply_id: str) -> DecisionRecord | str:
    """The unforced decision that sent the reply ``reply_id``, or why there is none.

    A stored reply of the bot's names the message it answered (``reply_to``); the decision
    on that message that sent it is the one to label.
    """
    reply = s.scalar(select(Message).where(Message.platform == platform, Message.platform_message_id == reply_id))
    if reply is None or not reply.from_assistant or reply.reply_to is None:
        # A person's message, or one the bot never stored as its reply: nothing was decided there.
        return NOT_A_REPLY
    trigger = aliased(Message)
    decision = s.scalar(
        select(DecisionRecord)
        .join(trigger, trigger.id == DecisionRecord.message_pk)
        .where(
            trigger.channel_pk == reply.channel_pk,
            trigger.platform == platform,
            trigger.platform_message_id == reply.reply_to,
            DecisionRecord.outcome == outcomes.SENT,
        )
        .order_by(DecisionRecord.id.desc())
        .limit(1)
    )
    if decision is None:
        return NO_DECISION
    # Someone asked (a mention, a reply to the bot, its name): answering cannot be speaking out of turn.
    return FORCED if decision.forced else decision


def delete_labels_from(s: Session, platform: str, author_id: str) -> int:
    """Delete every label a person gave on a platform (forget-me); returns how many."""
    res = s.execute(
        delete(DecisionLabel).where(DecisionLabel.platform == platform, DecisionLabel.author_id == author_id)
    )
    return res.rowcount


def delete_labels_carried_by(s: Session, platform: str, source_id: str) -> int:
    """Delete the labels a deleted platform event carried (a redacted Matrix reaction); returns how many."""
    res = s.execute(
        delete(DecisionLabel).where(DecisionLabel.platform == platform, DecisionLabel.source_id == source_id)
    )
    return res.rowcount
