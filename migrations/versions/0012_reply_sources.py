"""Which messages a reply of the assistant rests on (a quote or a grounded answer from memory).

``reply_sources``: one row per (reply, source message). Deleting a source message deletes
the replies that repeat it (bot/store/forget.py), so that a person's forget-me or a
redaction also takes back what the assistant quoted of them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the reply -> source links."""
    op.create_table(
        "reply_sources",
        sa.Column("reply_pk", sa.Integer, sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("source_pk", sa.Integer, sa.ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_index("ix_reply_sources_source", "reply_sources", ["source_pk"])


def downgrade() -> None:
    """Drop the links."""
    op.drop_index("ix_reply_sources_source", table_name="reply_sources")
    op.drop_table("reply_sources")
