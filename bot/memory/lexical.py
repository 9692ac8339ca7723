"""The two full-text backends behind memory: SQLite FTS5 and PostgreSQL tsvector, restricted to one channel.

Each searches two sources of a channel: its messages (people's, not the assistant's)
and the chunks of its documents. For each it answers which best match any of some terms
(the candidates) and how many contain each term (document frequencies). Every query
names the channel, so nothing from another channel (or a DM) can come back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from sqlalchemy import text
from sqlalchemy.engine import Connection

MESSAGES, CHUNKS = "messages", "chunks"
# Above every message key.
NO_LIMIT = 2**62
# Must be migrations 0007's, 0010's and 0011's.
TOKENIZER = "porter unicode61 remove_diacritics 2"


class SQLiteIndex:
    """FTS5 with BM25 ranking (``memory_messages_fts``, ``memory_chunks_fts``).

    The channel is a column of each index: every query asks for its words *and* the
    channel, so FTS5 itself keeps a search inside the channel.
    """

    _CANDIDATES = {
        # The author's name counts half as much as the text; the channel not at all.
        MESSAGES: text(
            "SELECT rowid FROM memory_messages_fts WHERE memory_messages_fts MATCH :q AND rowid < :before "
            "ORDER BY bm25(memory_messages_fts, 1.0, 0.5, 0.0) LIMIT :n"
        ),
        CHUNKS: text(
            "SELECT rowid FROM memory_chunks_fts WHERE memory_chunks_fts MATCH :q "
            "ORDER BY bm25(memory_chunks_fts, 1.0, 0.0) LIMIT :n"
        ),
    }
    _DF = {
        MESSAGES: text("SELECT count(*) FROM memory_messages_fts WHERE memory_messages_fts MATCH :q"),
        CHUNKS: text("SELECT count(*) FROM memory_chunks_fts WHERE memory_chunks_fts MATCH :q"),
    }

    # The columns the words are looked for in: never the channel (a number equal to its key
    # would match every message of the channel).
    _WORD_COLUMNS = {MESSAGES: "{text display_name}", CHUNKS: "{text}"}

    @classmethod
    def _match(cls, source: str, terms: Sequence[str], channel_pk: int) -> str:
        # Terms are runs of letters and digits (bot/memory/terms.py); quoting makes each a plain word.
        words = " OR ".join(f'"{t}"' for t in terms)
        return f'{cls._WORD_COLUMNS[source]} : ({words}) AND channel_pk : "{int(channel_pk)}"'

    def candidates(
        self, conn: Connection, source: str, channel_pk: int, terms: Sequence[str], limit: int, before: int = NO_LIMIT
    ) -> list[int]:
        """The keys of the channel's best matches in ``source`` (messages below ``before``), best first."""
        params = {"q": self._match(source, terms, channel_pk), "n": limit, "before": before}
        return [r[0] for r in conn.execute(self._CANDIDATES[source], params)]

    def doc_freqs(self, conn: Connection, source: str, channel_pk: int, terms: Sequence[str]) -> dict[str, int]:
        """Per term, how many of the channel's indexed messages (or chunks) contain it."""
        # In-process: one query per term costs no round trip.
        return {
            t: int(conn.execute(self._DF[source], {"q": self._match(source, [t], channel_pk)}).scalar() or 0)
            for t in terms
        }


class PostgresIndex:
    """The generated ``search_vector`` columns and their GIN indexes (migrations 0007, 0011 and 0013).

    Candidates are ranked with ``ts_rank`` (how often the words occur, over the length):
    ``ts_rank_cd`` (cover density) walked every match's word positions and took most of a
    search's time at 100,000 messages (EXPLAIN ANALYZE: 36 ms against 6 ms for 4,712
    matches), and memory scores the candidates again anyway (bot/memory/search.py).
    """

    _CANDIDATES = {
        MESSAGES: text(
            "SELECT id FROM messages WHERE channel_pk = :c AND NOT from_assistant AND id < :before "
            "AND search_vector @@ to_tsquery('english', :q) "
            "ORDER BY ts_rank(search_vector, to_tsquery('english', :q), 1) DESC, id DESC LIMIT :n"
        ),
        CHUNKS: text(
            "SELECT id FROM memory_chunks WHERE channel_pk = :c AND search_vector @@ to_tsquery('english', :q) "
            "ORDER BY ts_rank(search_vector, to_tsquery('english', :q), 1) DESC, id LIMIT :n"
        ),
    }
    # One count per term ({i}: its parameter), each planned for its own word.
    _DF = {
        MESSAGES: "(SELECT count(*) FROM messages WHERE channel_pk = :c AND NOT from_assistant "
        "AND search_vector @@ to_tsquery('english', :q{i}))",
        CHUNKS: "(SELECT count(*) FROM memory_chunks WHERE channel_pk = :c "
        "AND search_vector @@ to_tsquery('english', :q{i}))",
    }

    def candidates(
        self, conn: Connection, source: str, channel_pk: int, terms: Sequence[str], limit: int, before: int = NO_LIMIT
    ) -> list[int]:
        """The keys of the channel's best matches in ``source`` (messages below ``before``), best first."""
        # Terms hold no tsquery operator (letters and digits only).
        params = {"q": " | ".join(terms), "c": channel_pk, "n": limit, "before": before}
        return [r[0] for r in conn.execute(self._CANDIDATES[source], params)]

    def doc_freqs(self, conn: Connection, source: str, channel_pk: int, terms: Sequence[str]) -> dict[str, int]:
        """Per term, how many of the channel's indexed messages (or chunks) contain it."""
        if not terms:
            return {}
        # One statement for all the terms (a question has up to 12): one round trip, and
        # at 100,000 messages 1.8 ms a search where a query per term took 2.6 ms.
        counts = ", ".join(self._DF[source].format(i=i) for i in range(len(terms)))
        params = {"c": channel_pk, **{f"q{i}": t for i, t in enumerate(terms)}}
        row = conn.execute(text(f"SELECT {counts}"), params).one()
        return {t: int(n or 0) for t, n in zip(terms, row, strict=True)}


def having(terms: Sequence[str], rows: Mapping[int, tuple[str, str]]) -> dict[str, set[int]]:
    """Per term, which of ``rows`` (key -> (text, author name)) contain it.

    A small in-memory FTS5 table with the index's tokenizer answers: asking the channel's
    index would read each term's whole list of messages.
    """
    scratch = sqlite3.connect(":memory:")
    try:
        scratch.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, display_name, tokenize='{TOKENIZER}')")
        scratch.executemany(
            "INSERT INTO t(rowid, text, display_name) VALUES (?, ?, ?)", [(k, *v) for k, v in rows.items()]
        )
        return {t: {r[0] for r in scratch.execute("SELECT rowid FROM t WHERE t MATCH ?", (f'"{t}"',))} for t in terms}
    finally:
        scratch.close()


def index_for(dialect: str) -> SQLiteIndex | PostgresIndex:
    """The backend for a SQLAlchemy dialect name."""
    if dialect == "sqlite":
        return SQLiteIndex()
    if dialect == "postgresql":
        return PostgresIndex()
    raise ValueError(f"memory: no full-text index for database {dialect!r} (use SQLite or PostgreSQL)")
