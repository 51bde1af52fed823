"""Access audit rows keep the HTTP status of the request they record.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("access_events") as batch:
        batch.add_column(sa.Column("status_code", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_events") as batch:
        batch.drop_column("status_code")
