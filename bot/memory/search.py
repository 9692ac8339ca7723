"""memory.search: the passages of one channel's history that answer a question, with their sources.

Retrieval has two steps. The full-text index (SQLite FTS5 / PostgreSQL tsvector) finds
the channel's best-matching messages for any of the question's words. They are then
scored by the weight (inverse document frequency in this channel) of the question's
words that each contains: ``coverage`` is the share of the question's weight a passage
holds, and a passage below ``min_coverage`` is not relevant (the question is then one
this channel cannot answer).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Engine, Row

from bot.memory.lexical import index_for
from bot.memory.sources import message_link
from bot.memory.terms import query_terms
from bot.store.models import Channel, Message

# Candidates taken from the full-text index before scoring.
CANDIDATES = 100
# BM25's length normalisation: long messages that mention everything rank lower.
_K1, _B, _AVG_WORDS = 1.2, 0.5, 14.0
# Chosen on training/data/memory_qa_train.jsonl (never on the shipped evaluation file).
DEFAULT_MIN_COVERAGE = 0.5


@dataclass(frozen=True)
class Passage:
    """A retrieved message (or document chunk) with who wrote it, when, and where to find it."""

    message_pk: int | None
    message_id: str
    author: str
    author_id: str
    created_at: datetime | None
    text: str
    link: str | None
    score: float
    coverage: float
    matched: tuple[str, ...]
    document: str | None = None


LinkFn = Callable[[str, str, str], str | None]


class Memory:
    """Searches one channel's indexed history; it reads the store's engine and writes nothing."""

    def __init__(self, engine: Engine, *, assistant_name: str = "assistant", link: LinkFn = message_link) -> None:
        self.engine = engine
        self.assistant_name = assistant_name
        self.link = link
        self._index = index_for(engine.dialect.name)

    def search(self, channel_pk: int, question: str, k: int = 5) -> list[Passage]:
        """The ``k`` passages of this channel that best answer ``question``, best first (any coverage)."""
        terms = query_terms(question, self.assistant_name)
        if not terms:
            return []
        with self.engine.connect() as conn:
            pks = self._index.candidates(conn, channel_pk, terms, CANDIDATES)
            if not pks:
                return []
            total = conn.scalar(
                select(func.count(Message.id)).where(
                    Message.channel_pk == channel_pk, Message.from_assistant.is_(False)
                )
            )
            weights = {t: _idf(self._index.doc_freq(conn, channel_pk, t), int(total or 0)) for t in terms}
            having = {t: self._index.having(conn, t, pks) for t in terms}
            rows = {m.id: m for m in conn.execute(select(Message).where(Message.id.in_(pks)))}
            channel = conn.execute(select(Channel.platform, Channel.channel_id).where(Channel.id == channel_pk)).one()
        full = sum(weights.values()) or 1.0
        scored = []
        for rank, pk in enumerate(pks):
            matched = tuple(t for t in terms if pk in having[t])
            weight = sum(weights[t] for t in matched)
            words = max(1, len(rows[pk].text.split()))
            norm = (_K1 + 1) / (1 + _K1 * (1 - _B + _B * words / _AVG_WORDS))
            scored.append((weight * norm, -rank, pk, matched, weight / full))
        scored.sort(reverse=True)
        return [self._passage(rows[pk], channel, score, cov, matched) for score, _, pk, matched, cov in scored[:k]]

    def _passage(self, row: Row, channel: Row, score: float, coverage: float, matched: tuple[str, ...]) -> Passage:
        return Passage(
            message_pk=row.id,
            message_id=row.platform_message_id,
            author=row.display_name,
            author_id=row.author_id,
            created_at=row.created_at,
            text=row.text,
            link=self.link(channel.platform, channel.channel_id, row.platform_message_id),
            score=round(score, 4),
            coverage=round(coverage, 4),
            matched=matched,
        )


def _idf(df: int, total: int) -> float:
    """BM25's inverse document frequency; a word the channel never used weighs the most."""
    return math.log(1 + (max(total, df) - df + 0.5) / (df + 0.5))
