"""Users remember whether their password hash came from the legacy server.

The legacy server's bcrypt silently used the first 72 bytes of a longer password, so such a
hash may need the old truncation at login; a password set here never does (it is at most 72
bytes), and a longer one is refused. Accounts that exist when this runs keep the old behaviour,
because nothing tells an imported hash from one made here.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(
            sa.Column("legacy_password", sa.Boolean(), nullable=False, server_default=sa.true())
        )
    with op.batch_alter_table("users") as batch:
        batch.alter_column("legacy_password", server_default=sa.false())


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("legacy_password")
