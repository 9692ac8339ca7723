"""memory.search: the passages of one channel's history that answer a question, with their sources.

Retrieval has two steps. The full-text index (SQLite FTS5 / PostgreSQL tsvector) finds
the channel's best-matching messages for any of the question's words. They are then
scored by the weight (inverse document frequency in this channel) of the question's
words that each contains, with a bonus for a message that states a value (a number, a
name): ``coverage`` is the share of the question's weight a passage holds, and the
answer composer (bot/memory/answer.py) treats a passage below ``DEFAULT_MIN_COVERAGE``
as not relevant (the question is then one this channel cannot answer).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine, Row

from bot.memory.lexical import CHUNKS, MESSAGES, NO_LIMIT, having, index_for
from bot.memory.sources import message_link
from bot.memory.terms import WORD, query_terms
from bot.store.models import Channel, MemoryChunk, MemoryDocument, Message

# Candidates taken from the full-text index before scoring.
CANDIDATES = 100
TOTAL_TTL_S = 60.0
# Words whose document frequency is remembered per channel (for TOTAL_TTL_S), at most.
DF_CACHE_SIZE = 10_000
COMMON_SHARE = 0.01
# BM25's length normalisation: long messages that mention everything rank lower.
_K1, _B, _AVG_WORDS = 1.2, 0.5, 14.0
# A message that states a value (a number, a name, an address) is what a question about
# the past usually wants: it ranks above chatter with the same words.
FACT_BONUS = 0.5
_VALUE = re.compile(r"\d|@\w|\b(?:Dr|Mr|Mrs|Ms|St)\. [A-Z]|(?<![.!?]\s)(?<!^)\b(?!I\b|I')[A-Z][\w'-]+")
ABSENT_WEIGHT = 0.25
PERSON_MISSING = 0.5
# A question word that a passage holds only in another form, through the index's stemmer
# ("booked" for "book", "meet" for "meeting", "park" for "parking"), is often another word:
# it counts for half its weight in the coverage (a plural is the same word).
OTHER_FORM = 0.5
# Chosen on training/data/memory_qa_train.jsonl (never on the shipped evaluation file).
DEFAULT_MIN_COVERAGE = 0.25


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
    states_value: bool
    document: str | None = None


# (platform, channel id, message id, server id) -> a link to the message
_COLUMNS = (
    Message.id,
    Message.platform_message_id,
    Message.author_id,
    Message.display_name,
    Message.text,
    Message.created_at,
)
LinkFn = Callable[[str, str, str, str | None], str | None]


class Memory:
    """Searches one channel's indexed history; it reads the store's engine and writes nothing."""

    def __init__(self, engine: Engine, *, assistant_name: str = "assistant", link: LinkFn = message_link) -> None:
        self.engine = engine
        self.assistant_name = assistant_name
        self.link = link
        self._index = index_for(engine.dialect.name)
        self._totals: dict[int, tuple[float, int]] = {}
        self._dfs: dict[tuple[int, str], tuple[float, int]] = {}

    def search(self, channel_pk: int, question: str, k: int = 5, *, before_pk: int | None = None) -> list[Passage]:
        """The ``k`` passages of this channel that best answer ``question``, best first (any coverage).

        ``before_pk``: only messages stored before this one (the question itself and what followed it are left out).
        """
        terms = query_terms(question, self.assistant_name)
        if not terms:
            return []
        with self.engine.connect() as conn:
            total, chunks = self._counts(conn, channel_pk)
            sources = (MESSAGES, CHUNKS) if chunks else (MESSAGES,)
            dfs = self._doc_freqs(conn, channel_pk, terms, sources)
            # Words in a large share of the channel find nothing specific and are slow to
            # rank: candidates come from the others (all of them are still scored).
            selective = [t for t in terms if 0 < dfs[t] <= max(COMMON_SHARE * total, CANDIDATES)] or terms
            before = NO_LIMIT if before_pk is None else before_pk
            found = _messages(
                conn, channel_pk, self._index.candidates(conn, MESSAGES, channel_pk, selective, CANDIDATES, before)
            )
            if chunks:
                found += _chunks(
                    conn, channel_pk, self._index.candidates(conn, CHUNKS, channel_pk, selective, CANDIDATES)
                )
            channel = conn.execute(
                select(Channel.platform, Channel.channel_id, Channel.server_id).where(Channel.id == channel_pk)
            ).one()
        if not found:
            return []
        scored = _score(terms, dfs, total, found)
        passages: list[Passage] = []
        seen: set[str] = set()
        for score, coverage, matched, hit in scored:
            # The same words said twice ("lol", a pasted line) are one passage.
            key = " ".join(hit.text.casefold().split())
            if key in seen:
                continue
            seen.add(key)
            passages.append(self._passage(hit, channel, score, coverage, matched))
            if len(passages) == k:
                break
        return passages

    def _counts(self, conn: Connection, channel_pk: int) -> tuple[int, int]:
        """The channel's messages plus document chunks, and its chunks alone.

        Messages are counted at most once a minute (the count only weighs words); chunks,
        few and indexed by channel, every time, so that a document learnt a moment ago is searched.
        """
        now = time.monotonic()
        cached = self._totals.get(channel_pk)
        if cached is None or now - cached[0] > TOTAL_TTL_S:
            messages = conn.scalar(select(func.count(Message.id)).where(Message.channel_pk == channel_pk)) or 0
            cached = self._totals[channel_pk] = (now, int(messages))
        chunks = int(conn.scalar(select(func.count(MemoryChunk.id)).where(MemoryChunk.channel_pk == channel_pk)) or 0)
        return cached[1] + chunks, chunks

    def _doc_freqs(
        self, conn: Connection, channel_pk: int, terms: list[str], sources: tuple[str, ...]
    ) -> dict[str, int]:
        """Per term, how many of the channel's messages and chunks contain it.

        A count is remembered for TOTAL_TTL_S, like the channel's total: it only weighs the
        word. A word found nowhere is asked again every time: remembered, it would keep
        the word out of the candidates' query and hide a message that has just said it.
        """
        now = time.monotonic()
        dfs: dict[str, int] = {}
        for t in terms:
            cached = self._dfs.get((channel_pk, t))
            if cached is not None and now - cached[0] <= TOTAL_TTL_S:
                dfs[t] = cached[1]
        missing = [t for t in terms if t not in dfs]
        if missing:
            counts = [self._index.doc_freqs(conn, src, channel_pk, missing) for src in sources]
            if len(self._dfs) + len(missing) > DF_CACHE_SIZE:
                self._dfs.clear()
            for t in missing:
                dfs[t] = sum(c[t] for c in counts)
                if dfs[t] > 0:
                    self._dfs[(channel_pk, t)] = (now, dfs[t])
        return {t: dfs[t] for t in terms}

    def _passage(self, hit: _Hit, channel: Row, score: float, coverage: float, matched: tuple[str, ...]) -> Passage:
        link = None
        if hit.document is None:
            link = self.link(channel.platform, channel.channel_id, hit.message_id, channel.server_id)
        return Passage(
            message_pk=hit.message_pk,
            message_id=hit.message_id,
            author=hit.author,
            author_id=hit.author_id,
            created_at=hit.created_at,
            text=hit.text,
            link=link,
            score=round(score, 4),
            coverage=round(coverage, 4),
            matched=matched,
            states_value=states_a_value(hit.text),
            document=hit.document,
        )


@dataclass(frozen=True)
class _Hit:
    """A candidate from the index: a message or a document's chunk."""

    key: int  # messages > 0, chunks < 0 (one key space for the scoring)
    message_pk: int | None
    message_id: str
    author: str
    author_id: str
    created_at: datetime | None
    text: str
    document: str | None = None


def _messages(conn: Connection, channel_pk: int, pks: list[int]) -> list[_Hit]:
    """The candidate messages, in the index's order; the channel is checked again on the table's rows."""
    if not pks:
        return []
    # By key alone: with the channel in the query, PostgreSQL without statistics on the
    # table read the channel's whole index (EXPLAIN ANALYZE at 100,000 messages: 43 ms, 1-3 ms by key).
    query = select(*_COLUMNS, Message.channel_pk).where(Message.id.in_(pks))
    rows = {r.id: r for r in conn.execute(query) if r.channel_pk == channel_pk}
    return [
        _Hit(r.id, r.id, r.platform_message_id, r.display_name, r.author_id, r.created_at, r.text)
        for r in (rows[pk] for pk in pks if pk in rows)
    ]


def _chunks(conn: Connection, channel_pk: int, pks: list[int]) -> list[_Hit]:
    """The candidate chunks with their document's name, in the index's order."""
    if not pks:
        return []
    query = (
        select(MemoryChunk.id, MemoryChunk.position, MemoryChunk.text, MemoryDocument.id.label("doc"),
               MemoryDocument.name, MemoryDocument.added_by, MemoryDocument.added_at)
        .join(MemoryDocument, MemoryDocument.id == MemoryChunk.document_pk)
        .where(MemoryChunk.id.in_(pks), MemoryChunk.channel_pk == channel_pk)
    )  # fmt: skip
    rows = {r.id: r for r in conn.execute(query)}
    return [
        _Hit(-r.id, None, f"doc:{r.doc}:{r.position}", r.name, r.added_by, r.added_at, r.text, r.name)
        for r in (rows[pk] for pk in pks if pk in rows)
    ]


def _score(terms: list[str], dfs: dict[str, int], total: int, found: list[_Hit]) -> list[tuple]:
    """(score, coverage, matched words, hit) for every candidate, best first."""
    weights = {t: _idf(dfs[t], total) for t in terms}
    # A word the channel never used may be the missing topic or only the asker's
    # wording: it counts for a quarter of its weight in the coverage.
    counted = {t: w * (ABSENT_WEIGHT if dfs[t] == 0 else 1.0) for t, w in weights.items()}
    full = sum(counted.values()) or 1.0
    contains = having(terms, {h.key: (h.text, h.author) for h in found})
    # A question that names someone of the channel ("Quinn's flight") asks about that
    # person: a passage neither by nor about them counts half.
    authors = {h.author for h in found if h.document is None}
    people = {w for a in authors for w in query_terms(a, "")} & set(terms)
    scored = []
    for rank, hit in enumerate(found):
        matched = tuple(t for t in terms if hit.key in contains[t])
        words = max(1, len(hit.text.split()))
        norm = (_K1 + 1) / (1 + _K1 * (1 - _B + _B * words / _AVG_WORDS))
        bonus = 1 + FACT_BONUS if states_a_value(hit.text) else 1
        said = {w.casefold() for w in WORD.findall(f"{hit.text} {hit.author}")}
        coverage = sum(counted[t] * (1.0 if _same_word(t, said) else OTHER_FORM) for t in matched) / full
        if people - set(matched):
            bonus, coverage = bonus * PERSON_MISSING, coverage * PERSON_MISSING
        if matched and set(matched) <= people:
            coverage = 0.0  # by or about the person asked about, and nothing of what is asked
        scored.append((sum(weights[t] for t in matched) * norm * bonus, -rank, coverage, matched, hit))
    scored.sort(key=lambda x: (x[0], x[1]), reverse=True)
    return [(score, coverage, matched, hit) for score, _, coverage, matched, hit in scored]


def _same_word(term: str, words: set[str]) -> bool:
    """Whether ``words`` hold ``term`` itself, or its plural or singular."""
    return term in words or f"{term}s" in words or f"{term}es" in words or (term.endswith("s") and term[:-1] in words)


def states_a_value(text: str) -> bool:
    """Whether a message holds a specific value: a digit, an address or handle, or a capitalised name mid-sentence."""
    return _VALUE.search(text.strip()) is not None


def _idf(df: int, total: int) -> float:
    """BM25's inverse document frequency; a word the channel never used weighs the most."""
    return math.log(1 + (max(total, df) - df + 0.5) / (df + 0.5))
