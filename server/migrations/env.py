"""Alembic's entry point: migrate the database of the Flask app in whose context it runs.

Flask-Migrate runs this inside an app context, so the connection URL and the table
definitions come from the app (``server.extensions.db``), never from a second config.
"""

from __future__ import annotations

from alembic import context
from flask import current_app

db = current_app.extensions["migrate"].db
config = context.config


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (`flask db upgrade --sql`)."""
    context.configure(
        url=db.engine.url.render_as_string(hide_password=False),
        target_metadata=db.metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # render_as_batch: SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    with db.engine.connect() as connection:
        context.configure(connection=connection, target_metadata=db.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
