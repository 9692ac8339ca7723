"""The two full-text backends behind memory: SQLite FTS5 and PostgreSQL tsvector, restricted to one channel.

Each answers three questions about a channel's indexed messages: which best match any of
some terms (the candidates), how many contain each term (document frequencies), and
which of given messages contain each term. Every query names the channel, so nothing
from another channel (or a DM) can come back.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection

FTS = "memory_messages_fts"
# Above every message key.
NO_LIMIT = 2**62
# Must be migrations 0007's and 0010's.
TOKENIZER = "porter unicode61 remove_diacritics 2"


class SQLiteIndex:
    """FTS5 with BM25 ranking (the ``memory_messages_fts`` table of migrations 0007 and 0010).

    The channel is a column of the index: every query asks for its words *and* the
    channel, so FTS5 itself keeps a search inside the channel.
    """

    _CANDIDATES = text(
        f"SELECT rowid FROM {FTS} WHERE {FTS} MATCH :q AND rowid < :before "
        # The author's name counts half as much as the text; the channel not at all.
        f"ORDER BY bm25({FTS}, 1.0, 0.5, 0.0) LIMIT :n"
    )
    _DF = text(f"SELECT count(*) FROM {FTS} WHERE {FTS} MATCH :q")

    @staticmethod
    def _match(terms: Sequence[str], channel_pk: int) -> str:
        # Terms are runs of letters and digits (bot/memory/terms.py); quoting makes each a plain word.
        words = " OR ".join(f'"{t}"' for t in terms)
        return f'({words}) AND channel_pk : "{int(channel_pk)}"'

    def candidates(
        self, conn: Connection, channel_pk: int, terms: Sequence[str], limit: int, before: int = NO_LIMIT
    ) -> list[int]:
        """The channel's messages (with a key below ``before``) that best match any term, best first."""
        rows = conn.execute(self._CANDIDATES, {"q": self._match(terms, channel_pk), "n": limit, "before": before})
        return [r[0] for r in rows]

    def doc_freq(self, conn: Connection, channel_pk: int, term: str) -> int:
        """How many of the channel's indexed messages contain ``term``."""
        return int(conn.execute(self._DF, {"q": self._match([term], channel_pk)}).scalar() or 0)

    def having(
        self, conn: Connection, terms: Sequence[str], rows: Mapping[int, tuple[str, str]]
    ) -> dict[str, set[int]]:
        """Per term, which of ``rows`` (key -> (text, author name)) contain it.

        A small in-memory FTS5 table with the same tokenizer answers: asking the channel's
        index would read each term's whole list of messages.
        """
        scratch = sqlite3.connect(":memory:")
        try:
            scratch.execute(f"CREATE VIRTUAL TABLE t USING fts5(text, display_name, tokenize='{TOKENIZER}')")
            scratch.executemany(
                "INSERT INTO t(rowid, text, display_name) VALUES (?, ?, ?)", [(k, *v) for k, v in rows.items()]
            )
            return {
                term: {r[0] for r in scratch.execute("SELECT rowid FROM t WHERE t MATCH ?", (f'"{term}"',))}
                for term in terms
            }
        finally:
            scratch.close()


class PostgresIndex:
    """The generated ``messages.search_vector`` column and its GIN index (migration 0007)."""

    _CANDIDATES = text(
        "SELECT id FROM messages WHERE channel_pk = :c AND NOT from_assistant AND id < :before "
        "AND search_vector @@ to_tsquery('english', :q) "
        "ORDER BY ts_rank_cd(search_vector, to_tsquery('english', :q), 1) DESC, id DESC LIMIT :n"
    )
    _DF = text(
        "SELECT count(*) FROM messages WHERE channel_pk = :c AND NOT from_assistant "
        "AND search_vector @@ to_tsquery('english', :q)"
    )
    _HAS = text("SELECT id FROM messages WHERE id IN :ids AND search_vector @@ to_tsquery('english', :q)").bindparams(
        bindparam("ids", expanding=True)
    )

    @staticmethod
    def _match(terms: Sequence[str]) -> str:
        # Terms hold no tsquery operator (letters and digits only).
        return " | ".join(terms)

    def candidates(
        self, conn: Connection, channel_pk: int, terms: Sequence[str], limit: int, before: int = NO_LIMIT
    ) -> list[int]:
        """The channel's messages (with a key below ``before``) that best match any term, best first."""
        rows = conn.execute(self._CANDIDATES, {"q": self._match(terms), "c": channel_pk, "n": limit, "before": before})
        return [r[0] for r in rows]

    def doc_freq(self, conn: Connection, channel_pk: int, term: str) -> int:
        """How many of the channel's indexed messages contain ``term``."""
        return int(conn.execute(self._DF, {"q": term, "c": channel_pk}).scalar() or 0)

    def having(
        self, conn: Connection, terms: Sequence[str], rows: Mapping[int, tuple[str, str]]
    ) -> dict[str, set[int]]:
        """Per term, which of ``rows`` (key -> (text, author name)) contain it."""
        return {t: {r[0] for r in conn.execute(self._HAS, {"q": t, "ids": list(rows)})} for t in terms}


def index_for(dialect: str) -> SQLiteIndex | PostgresIndex:
    """The backend for a SQLAlchemy dialect name."""
    if dialect == "sqlite":
        return SQLiteIndex()
    if dialect == "postgresql":
        return PostgresIndex()
    raise ValueError(f"memory: no full-text index for database {dialect!r} (use SQLite or PostgreSQL)")
