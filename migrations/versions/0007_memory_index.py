"""The memory index: a full-text index over each message's text and author name, kept current by the database itself.

SQLite: an FTS5 table whose content is ``messages`` (it stores no copy of the text) and
triggers that index a message when it is stored, re-index it when it is edited or
redacted, and drop it when it is deleted (a single deletion, ``forget``, ``forget-me``,
retention, or a channel's deletion cascading to its messages). PostgreSQL: a generated
``tsvector`` column on ``messages`` with a GIN index (no extension needed); it is part of
the row, so it changes and goes with it.

The assistant's own replies are not indexed: memory answers from what people said.

A later revision that rebuilds ``messages`` on SQLite (batch mode copies and renames the
table) drops these triggers and must create them again (``create_sqlite_index``).

Revision ID: 0007
Revises: 0004
Create Date: 2026-12-01
"""

from alembic import op

revision = "0007"
down_revision = "0004"
branch_labels = None
depends_on = None

FTS = "memory_messages_fts"

SQLITE_CREATE = [
    # porter: "passwords" finds "password"; remove_diacritics: "cafe" finds "café".
    f"CREATE VIRTUAL TABLE {FTS} USING fts5(text, display_name, content='messages', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER memory_messages_ai AFTER INSERT ON messages WHEN new.from_assistant = 0 BEGIN "
    f"INSERT INTO {FTS}(rowid, text, display_name) VALUES (new.id, new.text, new.display_name); END",
    # An external-content FTS5 table forgets a row only when told its old text.
    f"CREATE TRIGGER memory_messages_ad AFTER DELETE ON messages WHEN old.from_assistant = 0 BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, text, display_name) VALUES ('delete', old.id, old.text, old.display_name); END",
    f"CREATE TRIGGER memory_messages_au AFTER UPDATE OF text, display_name ON messages WHEN old.from_assistant = 0 BEGIN "
    f"INSERT INTO {FTS}({FTS}, rowid, text, display_name) VALUES ('delete', old.id, old.text, old.display_name); "
    f"INSERT INTO {FTS}(rowid, text, display_name) VALUES (new.id, new.text, new.display_name); END",
    f"INSERT INTO {FTS}(rowid, text, display_name) SELECT id, text, display_name FROM messages WHERE from_assistant = 0",
]

SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS memory_messages_au",
    "DROP TRIGGER IF EXISTS memory_messages_ad",
    "DROP TRIGGER IF EXISTS memory_messages_ai",
    f"DROP TABLE IF EXISTS {FTS}",
]

POSTGRES_CREATE = [
    "ALTER TABLE messages ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('english', display_name || ' ' || text)) STORED",
    "CREATE INDEX ix_messages_search_vector ON messages USING GIN (search_vector)",
]

POSTGRES_DROP = [
    "DROP INDEX IF EXISTS ix_messages_search_vector",
    "ALTER TABLE messages DROP COLUMN IF EXISTS search_vector",
]


def create_sqlite_index() -> None:
    """Create (or, after a table rebuild, re-create) the SQLite index and its triggers, filled from messages."""
    for sql in SQLITE_DROP + SQLITE_CREATE:
        op.execute(sql)


def upgrade() -> None:
    """Index every stored message's text and keep the index current."""
    if op.get_bind().dialect.name == "sqlite":
        create_sqlite_index()
    else:
        for sql in POSTGRES_CREATE:
            op.execute(sql)


def downgrade() -> None:
    """Drop the index (the messages themselves stay)."""
    statements = SQLITE_DROP if op.get_bind().dialect.name == "sqlite" else POSTGRES_DROP
    for sql in statements:
        op.execute(sql)
