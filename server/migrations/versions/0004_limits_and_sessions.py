"""Request counts for the per-client limits, and console sessions kept on the server (so that
logging out, or revoking the admin token, ends them).
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0004", "0003"
branch_labels = depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_count",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("window_start", sa.Integer(), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_table(
        "console_session",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column(
            "token_id",
            sa.Integer(),
            sa.ForeignKey("admin_token.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_console_session_token_id", "console_session", ["token_id"])


def downgrade() -> None:
    op.drop_index("ix_console_session_token_id", "console_session")
    op.drop_table("console_session")
    op.drop_table("rate_count")
