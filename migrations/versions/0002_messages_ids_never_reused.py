"""Message ids are never reused on SQLite (AUTOINCREMENT), so deciding in id order survives deletions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

PostgreSQL's sequences never hand out a value twice: nothing to do there. SQLite gives
a new row max(id) + 1 unless the table is AUTOINCREMENT, so after ``forget`` new
messages got ids below those already decided on. SQLite cannot alter that in place:
the table is rebuilt (foreign keys are off during migrations, see env.py).
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _rebuild_messages(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("messages", recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}):
        pass  # nothing changes but the table option


def upgrade() -> None:
    """Rebuild SQLite's messages table with AUTOINCREMENT."""
    _rebuild_messages(True)


def downgrade() -> None:
    """Rebuild SQLite's messages table without AUTOINCREMENT."""
    _rebuild_messages(False)
