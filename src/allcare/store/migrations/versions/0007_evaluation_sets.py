"""The evaluation split follows lesions, and every run records its evaluation set.

``cases.split_key`` is what decides a case's side of the evaluation split: its own id, or a
digest of the lesion id its record carries, so two photos of one lesion sent as two cases land
on the same side. ``model_versions.eval_set`` is the exact list of evaluation cases and photos a
run was judged on, fixed when it was triggered, so an auditor can rebuild the comparison.

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("split_key", sa.String(length=80), nullable=True))
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("eval_set", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("eval_set")
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("split_key")
