"""Provisioning: bring the database to the current schema and give it a published model.

The app factory builds the app and nothing else; this runs once before the app serves
(``binbot serve``, ``binbot db upgrade``), never per worker or per request.

A database made before migrations existed (``db.create_all()``) has the tables of the
baseline revision but no ``alembic_version`` table: it is stamped with the baseline and
upgraded from there, so its rows are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import flask_migrate
from flask import Flask, current_app
from sqlalchemy import inspect

from binbot.errors import BinbotError
from server.errors import ServiceError
from server.extensions import MIGRATIONS_DIR, db
from server.registry.bundles import publish, published_version, register_bundle
from server.tables import ModelVersion

BASELINE_REVISION = "0001"
Log = Callable[[str], None]


def _ensure_sqlite_folder(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def upgrade_database(app: Flask, log: Log = print) -> None:
    """Apply every migration the database lacks (stamping a pre-migration database first)."""
    _ensure_sqlite_folder(app)
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
        if "alembic_version" not in tables and ModelVersion.__tablename__ in tables:
            log(f"Database made before migrations: marking it as revision {BASELINE_REVISION}")
            flask_migrate.stamp(directory=str(MIGRATIONS_DIR), revision=BASELINE_REVISION)
        before = database_revision()
        flask_migrate.upgrade(directory=str(MIGRATIONS_DIR))
        after = database_revision()
        log(f"Database schema: revision {after}" + (f" (was {before})" if before != after else ""))


def database_revision() -> str | None:
    """The revision the app's database is at (None: not under migrations yet)."""
    from alembic.migration import MigrationContext

    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def ensure_published_model(log: Log = print) -> ModelVersion | None:
    """On a database with no published model, register and publish the shipped starter."""
    current = published_version()
    if current is not None:
        return current
    starter = Path(current_app.config["BINBOT_STARTER_MODEL"])
    if not (starter / "manifest.json").exists():
        log(f"No published model, and no starter model at {starter}")
        return None
    log(f"Publishing the starter model from {starter}")
    try:
        return publish(register_bundle(starter).version, reason="starter model on first start")
    except ServiceError as exc:
        raise BinbotError(f"the starter model at {starter} cannot be published: {exc}") from None


def provision(app: Flask, *, starter: bool = True, log: Log = print) -> None:
    """Everything a fresh or older instance needs before it serves."""
    upgrade_database(app, log)
    if starter:
        with app.app_context():
            ensure_published_model(log)
