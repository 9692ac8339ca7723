"""The SQLite memory index also indexes each message's channel, so that a search stays inside the index.

A search asks the index for a word *and* the channel (two lists intersected inside FTS5)
instead of joining every match to ``messages`` to read its channel: at 100,000 messages
that join was most of a search's time. PostgreSQL is unchanged (its index is a column of
``messages``, filtered with the channel's own index).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

FTS = "memory_messages_fts"
TOKENIZER = "porter unicode61 remove_diacritics 2"


def _statements(columns: list[str]) -> list[str]:
    """Drop the index and its triggers, then create them over ``columns`` of messages, filled from them."""
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    delete = f"INSERT INTO {FTS}({FTS}, rowid, {cols}) VALUES ('delete', old.id, {old})"
    insert = f"INSERT INTO {FTS}(rowid, {cols}) VALUES (new.id, {new})"
    return [
        "DROP TRIGGER IF EXISTS memory_messages_au",
        "DROP TRIGGER IF EXISTS memory_messages_ad",
        "DROP TRIGGER IF EXISTS memory_messages_ai",
        f"DROP TABLE IF EXISTS {FTS}",
        f"CREATE VIRTUAL TABLE {FTS} USING fts5({cols}, content='messages', content_rowid='id', "
        f"tokenize='{TOKENIZER}')",
        f"CREATE TRIGGER memory_messages_ai AFTER INSERT ON messages WHEN new.from_assistant = 0 BEGIN {insert}; END",
        f"CREATE TRIGGER memory_messages_ad AFTER DELETE ON messages WHEN old.from_assistant = 0 BEGIN {delete}; END",
        f"CREATE TRIGGER memory_messages_au AFTER UPDATE OF {cols} ON messages WHEN old.from_assistant = 0 "
        f"BEGIN {delete}; {insert}; END",
        f"INSERT INTO {FTS}(rowid, {cols}) SELECT id, {cols} FROM messages WHERE from_assistant = 0",
    ]


def upgrade() -> None:
    """Re-create the SQLite index with the channel as a third column."""
    if op.get_bind().dialect.name == "sqlite":
        for sql in _statements(["text", "display_name", "channel_pk"]):
            op.execute(sql)


def downgrade() -> None:
    """Re-create the index of revision 0007 (text and author name)."""
    if op.get_bind().dialect.name == "sqlite":
        for sql in _statements(["text", "display_name"]):
            op.execute(sql)
