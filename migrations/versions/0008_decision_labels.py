"""Labels on decisions from the room (who, when, what kind), such as a false interruption marked by a 👎.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create decision_labels."""
    op.create_table(
        "decision_labels",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("decision_pk", sa.Integer, sa.ForeignKey("decisions.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("platform", sa.String(32), nullable=False),
        sa.Column("author_id", sa.String(255), nullable=False),
        sa.Column("source_id", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("decision_pk", "author_id", "kind", name="uq_decision_labels_decision_author_kind"),
    )
    op.create_index("ix_decision_labels_author", "decision_labels", ["platform", "author_id"])


def downgrade() -> None:
    """Drop decision_labels."""
    op.drop_index("ix_decision_labels_author", table_name="decision_labels")
    op.drop_table("decision_labels")
