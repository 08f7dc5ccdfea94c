"""Admin tokens get a note (whose or what for) and the time of their last use: `binbot token
list` showed a number and a date only, so revoking the right one of several was guesswork.
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0012", "0011"
branch_labels = depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("admin_token") as table:
        table.add_column(sa.Column("note", sa.String(100), nullable=True))
        table.add_column(sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("admin_token") as table:
        table.drop_column("last_used_at")
        table.drop_column("note")
