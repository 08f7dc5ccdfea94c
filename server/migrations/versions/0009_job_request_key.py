"""A retraining request's key (the API's Idempotency-Key, the console form's own): the same
request sent twice (a double click, a retry whose answer was lost) is one job, not two.
"""

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0009", "0008"
branch_labels = depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("training_job") as table:
        table.add_column(sa.Column("request_key", sa.String(200), nullable=True))
        table.create_unique_constraint("uq_training_job_request_key", ["request_key"])


def downgrade() -> None:
    with op.batch_alter_table("training_job") as table:
        table.drop_constraint("uq_training_job_request_key", type_="unique")
        table.drop_column("request_key")
