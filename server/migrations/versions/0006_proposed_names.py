"""Submissions may name a kind the model does not know ("Something else"): the label becomes
optional, and the proposed name and its grouping key are kept.
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0006", "0005"
branch_labels = depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("submission") as table:
        table.alter_column("label", existing_type=sa.String(200), nullable=True)
        table.add_column(sa.Column("proposed_name", sa.String(60), nullable=True))
        table.add_column(sa.Column("proposed_key", sa.String(60), nullable=True))
        table.create_index("ix_submission_proposed_key", ["proposed_key"])


def downgrade() -> None:
    with op.batch_alter_table("submission") as table:
        table.drop_index("ix_submission_proposed_key")
        table.drop_column("proposed_key")
        table.drop_column("proposed_name")
        table.alter_column("label", existing_type=sa.String(200), nullable=False)
