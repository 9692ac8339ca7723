"""PostgreSQL: the memory's GIN indexes take each new message at once instead of in a pending list.

By default a GIN index (``fastupdate``) first appends new rows to an unsorted pending
list, merged into the index only by a vacuum or once it outgrows ``gin_pending_list_limit``
(4 MB). Every search reads that whole list: with messages arriving steadily, each of a
search's queries read up to 4 MB more (EXPLAIN ANALYZE at 100,000 messages: 379 index
pages for one word, 3 once the list was merged). A chat store adds messages one at a
time, so indexing each at once costs little; searches then read only the words' own
entries. SQLite is unchanged (FTS5 has no such list).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

INDEXES = ("ix_messages_search_vector", "ix_memory_chunks_search_vector")


def upgrade() -> None:
    """Turn the pending list off and merge what it holds into the indexes."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in INDEXES:
        op.execute(f"ALTER INDEX {index} SET (fastupdate = off)")
        # Rows already in the list stay there until merged.
        op.execute(f"SELECT gin_clean_pending_list('{index}'::regclass)")


def downgrade() -> None:
    """Back to PostgreSQL's default (a pending list)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for index in INDEXES:
        op.execute(f"ALTER INDEX {index} RESET (fastupdate)")
