"""Documents a channel knows (what admins taught it), cut into chunks that the memory index searches.

``memory_documents``: one row per document of a channel (its name, where it came from,
who added it and when). ``memory_chunks``: its text in passages of a few paragraphs, with
the channel repeated so that a search stays inside it. Deleting the channel deletes its
documents, and deleting a document its chunks. The full-text index is kept current as
for messages: SQLite FTS5 (content in ``memory_chunks``) with triggers; PostgreSQL a
generated ``tsvector`` column with a GIN index.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

FTS = "memory_chunks_fts"
TOKENIZER = "porter unicode61 remove_diacritics 2"
_ROW = "rowid, text, channel_pk"


def upgrade() -> None:
    """Create the documents, their chunks and the chunks' full-text index."""
    op.create_table(
        "memory_documents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("channel_pk", sa.Integer, sa.ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("source", sa.String(1024), nullable=False),
        sa.Column("added_by", sa.String(255), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("channel_pk", "name", name="uq_memory_documents_channel_name"),
    )
    op.create_table(
        "memory_chunks",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("document_pk", sa.Integer, sa.ForeignKey("memory_documents.id", ondelete="CASCADE"), nullable=False),
        sa.Column("channel_pk", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
    )
    op.create_index("ix_memory_chunks_document", "memory_chunks", ["document_pk", "position"])
    op.create_index("ix_memory_chunks_channel", "memory_chunks", ["channel_pk"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            f"CREATE VIRTUAL TABLE {FTS} USING fts5(text, channel_pk, content='memory_chunks', "
            f"content_rowid='id', tokenize='{TOKENIZER}')"
        )
        op.execute(
            f"CREATE TRIGGER memory_chunks_ai AFTER INSERT ON memory_chunks BEGIN "
            f"INSERT INTO {FTS}({_ROW}) VALUES (new.id, new.text, new.channel_pk); END"
        )
        op.execute(
            f"CREATE TRIGGER memory_chunks_ad AFTER DELETE ON memory_chunks BEGIN "
            f"INSERT INTO {FTS}({FTS}, {_ROW}) VALUES ('delete', old.id, old.text, old.channel_pk); END"
        )
    else:
        op.execute(
            "ALTER TABLE memory_chunks ADD COLUMN search_vector tsvector "
            "GENERATED ALWAYS AS (to_tsvector('english', text)) STORED"
        )
        op.execute("CREATE INDEX ix_memory_chunks_search_vector ON memory_chunks USING GIN (search_vector)")


def downgrade() -> None:
    """Drop the chunks' index, the chunks and the documents."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS memory_chunks_ad")
        op.execute("DROP TRIGGER IF EXISTS memory_chunks_ai")
        op.execute(f"DROP TABLE IF EXISTS {FTS}")
    op.drop_table("memory_chunks")
    op.drop_table("memory_documents")
