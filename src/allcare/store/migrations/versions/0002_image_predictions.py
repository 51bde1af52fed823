"""Images keep their blur score, all class probabilities, an embedding and the model version.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.add_column(sa.Column("blur_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("probabilities", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("embedding", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("model_version", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("model_version")
        batch.drop_column("embedding")
        batch.drop_column("probabilities")
        batch.drop_column("blur_score")
