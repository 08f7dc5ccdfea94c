"""Training progress as data (job_event), and stored manifests upgraded to version 2.

Version 2 of the manifest names the resize recipe and its version, which the web app checks
before it loads a model. Every bundle made before had exactly recipe
``center-square-box-bilinear`` version 1, so the upgrade only restates it as fields.
"""

import json

import sqlalchemy as sa
from alembic import op

revision, down_revision = "0002", "0001"
branch_labels = depends_on = None

# Frozen here on purpose: a migration must mean the same thing however the code moves on.
RECIPE_V1 = {"recipe": "center-square-box-bilinear", "version": 1}

versions = sa.table(
    "model_version", sa.column("id", sa.Integer), sa.column("manifest_json", sa.Text)
)


def upgrade() -> None:
    op.create_table(
        "job_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "job_id",
            sa.Integer(),
            sa.ForeignKey("training_job.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("data_json", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_job_event_job_id", "job_event", ["job_id"])
    connection = op.get_bind()
    rows = connection.execute(sa.select(versions.c.id, versions.c.manifest_json)).all()
    for row_id, text in rows:
        manifest = json.loads(text)
        if manifest.get("manifest_version", 1) >= 2:
            continue
        old = manifest["input"].get("resize", {})
        manifest["input"]["resize"] = {
            **RECIPE_V1,
            "size": old.get("size", [224, 224]),
            "value_range": old.get("value_range", [0, 255]),
        }
        manifest["manifest_version"] = 2
        connection.execute(
            versions.update()
            .where(versions.c.id == row_id)
            .values(manifest_json=json.dumps(manifest))
        )


def downgrade() -> None:
    op.drop_index("ix_job_event_job_id", "job_event")
    op.drop_table("job_event")
