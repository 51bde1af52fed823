"""Records of what was imported from the old server, and old-to-new identifier mappings.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "legacy_imports",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("legacy_key", sa.String(length=255), nullable=False),
        sa.Column("new_key", sa.String(length=255), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "legacy_key"),
    )


def downgrade() -> None:
    op.drop_table("legacy_imports")
