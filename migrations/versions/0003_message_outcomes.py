"""Every message records its outcome, and whether a reply was owed, so that a restart finds what is undecided.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add messages.forced and messages.outcome; messages stored before are marked legacy, never redecided."""
    with op.batch_alter_table("messages", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.add_column(sa.Column("forced", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("outcome", sa.String(32), nullable=True))
    messages = sa.table("messages", sa.column("outcome", sa.String), sa.column("from_assistant", sa.Boolean))
    op.execute(messages.update().where(messages.c.from_assistant == sa.true()).values(outcome="own"))
    op.execute(messages.update().where(messages.c.outcome.is_(None)).values(outcome="legacy"))
    op.create_index("ix_messages_outcome", "messages", ["outcome", "id"])


def downgrade() -> None:
    """Drop the two columns and their index."""
    op.drop_index("ix_messages_outcome", table_name="messages")
    with op.batch_alter_table("messages", table_kwargs={"sqlite_autoincrement": True}) as batch:
        batch.drop_column("outcome")
        batch.drop_column("forced")
