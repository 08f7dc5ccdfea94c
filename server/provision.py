"""Provisioning: bring the database to the current schema and give it a published model.

The app factory builds the app and nothing else; this runs once before the app serves
(``binbot serve``, ``binbot db upgrade``), never per worker or per request.

A database made before migrations existed (``db.create_all()``) has the tables of the
baseline revision but no ``alembic_version`` table: it is stamped with the baseline and
upgraded from there, so its rows are kept.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import flask_migrate
from flask import Flask, current_app
from sqlalchemy import inspect
from sqlalchemy.exc import DBAPIError

from binbot.errors import BinbotError
from conversion.manifest import file_problems
from server.config import masked_database_url
from server.errors import ServiceError
from server.extensions import MIGRATIONS_DIR, database_error_reason, db
from server.registry.bundles import bundle_dir, publish, published_version, register_bundle
from server.tables import ModelVersion

BASELINE_REVISION = "0001"
Log = Callable[[str], None]


def _ensure_sqlite_folder(app: Flask) -> None:
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise BinbotError(f"the database's folder {folder} cannot be made ({reason})") from None


def upgrade_database(app: Flask, log: Log = print) -> None:
    """Apply every migration the database lacks (stamping a pre-migration database first)."""
    _ensure_sqlite_folder(app)
    with app.app_context():
        tables = set(inspect(db.engine).get_table_names())
        if "alembic_version" not in tables and ModelVersion.__tablename__ in tables:
            log(f"Database made before migrations: marking it as revision {BASELINE_REVISION}")
            flask_migrate.stamp(directory=str(MIGRATIONS_DIR), revision=BASELINE_REVISION)
        before = database_revision()
        if before is not None and before not in known_revisions():
            raise BinbotError(
                f"the database's schema is at revision {before}, which this BinBot does not "
                f"know (its newest is {newest_revision()}): a newer BinBot made or upgraded it; "
                "run that version, or point DATABASE_URL at another database"
            )
        flask_migrate.upgrade(directory=str(MIGRATIONS_DIR))
        after = database_revision()
        log(f"Database schema: revision {after}" + (f" (was {before})" if before != after else ""))


def _scripts():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config(str(MIGRATIONS_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return ScriptDirectory.from_config(config)


def known_revisions() -> set[str]:
    """Every schema revision this BinBot's migrations know. A database at another one was
    made by a newer BinBot: flask-migrate printed "Error: Can't locate revision identified by
    '0099'" and exited 1."""
    return {script.revision for script in _scripts().walk_revisions()}


def newest_revision() -> str:
    return _scripts().get_current_head()


def database_revision() -> str | None:
    """The revision the app's database is at (None: not under migrations yet)."""
    from alembic.migration import MigrationContext

    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def check_published_files(log: Log = print) -> None:
    """Say at start when the live model's files are not what its manifest lists (deleted or
    changed on the data disk): phones that do not have it yet cannot download it, and every
    try was a 500 that nobody saw coming."""
    current = published_version()
    if current is None:
        return
    problems = file_problems(bundle_dir(current.version), current.manifest["files"])
    if problems:
        log(
            f"WARNING: the published model {current.version} is damaged in "
            f"{bundle_dir(current.version)} ({'; '.join(problems)}): phones cannot download "
            "it; restore its files, or publish or roll back to another version in the console"
        )


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


@contextmanager
def reaching_the_database(app: Flask) -> Iterator[None]:
    """A database that refuses the connection (down, wrong host, wrong password) is a
    one-line error naming it (password hidden), not a driver's traceback."""
    try:
        yield
    except DBAPIError as exc:
        reason = database_error_reason(exc)
        url = masked_database_url(app.config["SQLALCHEMY_DATABASE_URI"])
        if "no such table" in reason or ("relation" in reason and "does not exist" in reason):
            reason += " (a database BinBot has not set up: run `binbot db upgrade` first)"
        raise BinbotError(f"cannot use the database {url}: {reason}") from None


def ensure_data_folder(app: Flask) -> None:
    """Create the data folder and prove it writable now, rather than fail the first upload."""
    folder = Path(app.config["BINBOT_DATA_DIR"])
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise BinbotError(f"the data folder {folder} cannot be written ({reason})") from None


def provision(app: Flask, *, starter: bool = True, log: Log = print) -> None:
    """Everything a fresh or older instance needs before it serves."""
    ensure_data_folder(app)
    with reaching_the_database(app):
        upgrade_database(app, log)
        with app.app_context():
            if starter:
                ensure_published_model(log)
            check_published_files(log)
