"""Retraining worker crashes, recorded by `binbot serve` when it starts a worker again."""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0005", "0004"
branch_labels = depends_on = None


def upgrade() -> None:
    op.create_table(
        "worker_crash",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("worker", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_worker_crash_at", "worker_crash", ["at"])


def downgrade() -> None:
    op.drop_index("ix_worker_crash_at", "worker_crash")
    op.drop_table("worker_crash")
