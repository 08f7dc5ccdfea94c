"""Kinds and their disposal advice as data: editable in the console, versioned, sent to phones
without a new model. The advice that used to be code (server/guidance.py) is the seed,
for the ten kinds of the shared e-waste dataset; a model's other labels get kinds when it is
published.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Frozen here on purpose: a migration must mean the same thing however the code moves on.
SEED = {
    "Battery": {
        "category": "Batteries",
        "bin": "Battery collection box",
        "steps": [
            "Tape the terminals of lithium and larger batteries to prevent short circuits.",
            "Drop it in a battery collection box (supermarkets, electronics stores).",
            "Swollen or damaged batteries: keep them apart and bring them to a collection point.",
        ],
        "hazards": ["fire risk (lithium)", "heavy metals"],
        "link": None,
    },
    "Keyboard": {
        "category": "Small IT equipment",
        "bin": "E-waste collection point",
        "steps": [
            "Remove batteries if it is wireless.",
            "Bring it to an e-waste collection point.",
        ],
        "hazards": [],
        "link": None,
    },
    "Microwave": {
        "category": "Small household appliance",
        "bin": "E-waste collection point",
        "steps": [
            "Do not open it: the capacitor can hold a dangerous charge.",
            "Bring it to an e-waste collection point or use a retailer take-back.",
        ],
        "hazards": ["high-voltage capacitor"],
        "link": None,
    },
    "Mobile": {
        "category": "Small IT and telecom equipment",
        "bin": "E-waste collection point or phone take-back",
        "steps": [
            "Back up and erase your data, remove the SIM and memory cards.",
            "Bring it to a take-back scheme or an e-waste collection point.",
        ],
        "hazards": ["lithium battery"],
        "link": None,
    },
    "Mouse": {
        "category": "Small IT equipment",
        "bin": "E-waste collection point",
        "steps": [
            "Remove batteries if it is wireless.",
            "Bring it to an e-waste collection point.",
        ],
        "hazards": [],
        "link": None,
    },
    "PCB": {
        "category": "Circuit boards",
        "bin": "E-waste collection point",
        "steps": [
            "Keep boards dry and unbroken; do not burn or grind them.",
            "Bring them to an e-waste collection point.",
        ],
        "hazards": ["lead solder", "brominated flame retardants"],
        "link": None,
    },
    "Player": {
        "category": "Consumer electronics",
        "bin": "E-waste collection point",
        "steps": ["Remove batteries and discs.", "Bring it to an e-waste collection point."],
        "hazards": [],
        "link": None,
    },
    "Printer": {
        "category": "IT equipment",
        "bin": "E-waste collection point",
        "steps": [
            "Remove ink or toner cartridges and return them to a cartridge recycling scheme.",
            "Bring the printer to an e-waste collection point.",
        ],
        "hazards": ["toner dust"],
        "link": None,
    },
    "Television": {
        "category": "Screens and monitors",
        "bin": "E-waste collection point (large items)",
        "steps": [
            "Keep the screen intact; old CRT sets contain lead glass.",
            "Use the retailer take-back when buying a new one, or a collection point.",
        ],
        "hazards": ["lead glass (CRT)", "mercury (older LCD backlights)"],
        "link": None,
    },
    "Washing Machine": {
        "category": "Large household appliance",
        "bin": "Bulky e-waste collection",
        "steps": [
            "Book a bulky-waste pickup or use the retailer take-back on delivery of a new one.",
            "Do not dump it: metals and motors are recovered.",
        ],
        "hazards": [],
        "link": None,
    },
}


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
