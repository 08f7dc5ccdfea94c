"""Each advice revision names the one it was edited from, once: an edit made from an older
revision than the current one is refused instead of silently undoing someone else's edit.
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0008", "0007"
branch_labels = depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("advice") as table:
        table.add_column(sa.Column("replaces_id", sa.Integer(), nullable=True))
        table.create_unique_constraint("uq_advice_replaces_id", ["replaces_id"])


def downgrade() -> None:
    with op.batch_alter_table("advice") as table:
        table.drop_constraint("uq_advice_replaces_id", type_="unique")
        table.drop_column("replaces_id")
