"""The same photo sent again as another kind or name: kept beside the stored answer (it was
dropped, so a person's second, corrected answer was lost and reviewers never saw the
disagreement).
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0011", "0010"
branch_labels = depends_on = None


def upgrade() -> None:
    op.create_table(
        "other_answer",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "submission_id",
            sa.Integer(),
            sa.ForeignKey("submission.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("key", sa.String(60), nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("proposed_name", sa.String(60), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("submission_id", "key"),
    )
    op.create_index("ix_other_answer_submission_id", "other_answer", ["submission_id"])


def downgrade() -> None:
    op.drop_index("ix_other_answer_submission_id", table_name="other_answer")
    op.drop_table("other_answer")
