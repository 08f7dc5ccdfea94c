"""Retraining worker crashes, recorded by `binbot serve` when it starts a worker again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


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
