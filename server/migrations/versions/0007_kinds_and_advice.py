"""Kinds and their disposal advice as data: editable in the console, versioned, sent to phones
without a new model. The advice that used to be code (server/guidance.py) is the seed,
for the ten kinds of the shared e-waste dataset; a model's other labels get kinds when it is
published.
"""

import json
from pathlib import Path

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0007", "0006"
branch_labels = depends_on = None

# Frozen beside this file on purpose: a migration must mean the same thing however the code moves on.
SEED = json.loads((Path(__file__).with_name("0007_advice_seed.json")).read_text(encoding="utf-8"))


def upgrade() -> None:
    kind = op.create_table(
        "kind",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(60), nullable=False, unique=True),
        sa.Column("key", sa.String(60), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    advice = op.create_table(
        "advice",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "kind_id", sa.Integer(), sa.ForeignKey("kind.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("advice_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_advice_kind_id", "advice", ["kind_id"])
    now = sa.func.now()
    connection = op.get_bind()
    for number, (name, entry) in enumerate(SEED.items(), start=1):
        connection.execute(
            kind.insert().values(id=number, name=name, key=name.casefold(), created_at=now)
        )
        connection.execute(
            advice.insert().values(kind_id=number, advice_json=json.dumps(entry), created_at=now)
        )
    if connection.dialect.name == "postgresql":  # the ids above were given, not drawn
        for table in ("kind", "advice"):
            connection.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"(SELECT MAX(id) FROM {table}))"
                )
            )


def downgrade() -> None:
    op.drop_index("ix_advice_kind_id", "advice")
    op.drop_table("advice")
    op.drop_table("kind")
