"""Each channel records its server (a Discord guild), so that a shard process resumes only its own channels.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add channels.server_id (NULL: a direct message, a platform without servers, or not known yet)."""
    with op.batch_alter_table("channels") as batch:
        batch.add_column(sa.Column("server_id", sa.String(255), nullable=True))
    op.create_index("ix_channels_server", "channels", ["platform", "server_id"])


def downgrade() -> None:
    """Drop channels.server_id and its index."""
    op.drop_index("ix_channels_server", table_name="channels")
    with op.batch_alter_table("channels") as batch:
        batch.drop_column("server_id")
