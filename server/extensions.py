"""The Flask extensions (database, migrations), created here and bound in the app factory."""

from __future__ import annotations

import contextlib
from pathlib import Path

from flask import Flask
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event, false, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase

SQLITE_BUSY_TIMEOUT_MS = 5000
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL (readers never wait for the writer), a busy timeout, and enforced foreign keys."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def write_lock(key: int, table: type[Base]) -> None:
    """Hold a lock until this transaction ends, for a request that decides from what it reads
    and then changes it (two at once would both decide from the same state): PostgreSQL's
    advisory lock ``key``; SQLite's one writer lock, which any write statement takes, even one
    that changes no row of ``table``, and which other writers wait for (busy_timeout)."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        db.session.execute(update(table).where(false()).values(id=table.id))


def init_extensions(app: Flask) -> None:
    from server import tables  # noqa: F401  (the tables must be known to the metadata)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))


def database_error_reason(error: DBAPIError) -> str:
    """The driver's first line for a database error ("connection refused", "no such table"),
    for the one-line messages of the CLI, the worker and the supervisor."""
    return str(error.orig or error).strip().splitlines()[0]


def forget_failed_transaction() -> None:
    """Roll the session back after a database error; with the database away, the rollback
    may fail too, which must not end the caller's retry loop."""
    with contextlib.suppress(DBAPIError):
        db.session.rollback()
