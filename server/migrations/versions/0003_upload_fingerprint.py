"""Submissions remember the hash of the bytes as uploaded, so that a retry with the same
Idempotency-Key but another photo is refused instead of answered as a replay.
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0003", "0002"
branch_labels = depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submission") as table:
        table.add_column(sa.Column("upload_sha256", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("submission") as table:
        table.drop_column("upload_sha256")
