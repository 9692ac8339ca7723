"""Tombstones for deleted messages (platform and message id, no content), so that they are never stored again.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create forgotten_messages."""
    op.create_table(
        "forgotten_messages",
        sa.Column("platform", sa.String(32), primary_key=True),
        sa.Column("platform_message_id", sa.String(255), primary_key=True),
        sa.Column("forgotten_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop forgotten_messages."""
    op.drop_table("forgotten_messages")
