"""Schema migrations: a database from before migrations is adopted with every row kept, the
migrations build exactly the tables the code declares, and the app factory touches nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import sqlalchemy as sa
from conftest import STARTER, binbot

from conversion.manifest import schema_problems

LEGACY_SCHEMA = Path(__file__).parent / "data" / "legacy_schema.json"
HEAD = "0012"  # the newest revision in server/migrations/versions

LEGACY_RESIZE = {  # input.resize as conversion wrote it before manifest version 2
    "method": "center-square-crop, box-downsample by k = side // 224 when k >= 2, bilinear",
    "size": [224, 224],
    "crop": "center-square",
    "box_downsample": "k = floor(side / 224); if k >= 2 crop to floor(side / k) * k",
    "interpolation": "bilinear",
    "half_pixel_centers": True,
    "antialias": False,
    "exif_orientation": "applied",
    "value_range": [0, 255],
}


def legacy_manifest() -> dict:
    manifest = json.loads((STARTER / "manifest.json").read_text())
    manifest["version"] = "starter-1"
    del manifest["manifest_version"]
    manifest["input"]["resize"] = LEGACY_RESIZE
    return manifest


def make_legacy_database(url: str) -> None:
    """Today's schema (as `db.create_all()` made it), with a row in every table."""
    engine = sa.create_engine(url)
    dialect = "sqlite" if url.startswith("sqlite") else "postgresql"
    statements = json.loads(LEGACY_SCHEMA.read_text())[dialect]
    now = "2026-11-20 10:00:00+00:00"
    with engine.begin() as connection:
        for statement in statements:
            connection.execute(sa.text(statement))
        connection.execute(
            sa.text("INSERT INTO model_version (version, manifest_json, created_at, published, "
                    "published_at) VALUES ('starter-1', :m, :t, true, :t)"),
            {"m": json.dumps(legacy_manifest()), "t": now},
        )  # fmt: skip
        connection.execute(
            sa.text("INSERT INTO submission (sha256, idempotency_key, label, predicted_label, "
                    "confidence, model_version, image_path, width, height, status, created_at) "
                    "VALUES (:h, 'key-1', 'Printer', 'Battery', 0.42, 'starter-1', "
                    "'submissions/ab/x.jpg', 640, 480, 'accepted', :t)"),
            {"h": "ab" * 32, "t": now},
        )  # fmt: skip
        connection.execute(
            sa.text("INSERT INTO admin_token (token_sha256, created_at) VALUES (:h, :t)"),
            {"h": "cd" * 32, "t": now},
        )
        connection.execute(
            sa.text("INSERT INTO publish_event (version, action, forced, reason, at) "
                    "VALUES ('starter-1', 'publish', false, 'first start', :t)"),
            {"t": now},
        )  # fmt: skip
        connection.execute(
            sa.text("INSERT INTO training_job (status, settings_json, worker, created_at, log, "
                    "error, result_json) VALUES ('failed', '{\"head_epochs\": 2}', 'w1', :t, "
                    "'line 1\nline 2\n', 'boom', NULL)"),
            {"t": now},
        )  # fmt: skip
    engine.dispose()


def read_rows(url: str) -> dict[str, list[dict]]:
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        tables = sa.inspect(connection).get_table_names()
        rows = {
            name: [dict(r._mapping) for r in connection.execute(sa.text(f"SELECT * FROM {name}"))]
            for name in tables
        }
    engine.dispose()
    return rows


def db_command(url: str, tmp_path: Path, *args: str):
    env = {**os.environ, "DATABASE_URL": url, "BINBOT_INSTANCE_DIR": str(tmp_path / "instance")}
    return binbot("db", *args, env=env)


def test_a_database_from_before_migrations_is_upgraded_with_every_row_intact(
    database_url, tmp_path
):
    make_legacy_database(database_url)
    before = read_rows(database_url)

    upgraded = db_command(database_url, tmp_path, "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert "made before migrations" in upgraded.stdout
    after = read_rows(database_url)

    for table in ("submission", "admin_token", "publish_event", "training_job"):
        kept = [{k: row[k] for k in before[table][0]} for row in after[table]]
        assert kept == before[table], table  # every old column of every row, unchanged
    assert after["job_event"] == []
    assert after["alembic_version"] == [{"version_num": HEAD}]
    assert after["submission"][0]["upload_sha256"] is None  # added since, unknown for old rows
    # The stored manifest now names its resize recipe, and meets the schema.
    [version] = after["model_version"]
    manifest = json.loads(version["manifest_json"])
    assert manifest["input"]["resize"]["recipe"] == "center-square-box-bilinear"
    assert manifest["input"]["resize"]["version"] == 1
    assert schema_problems(manifest) == []
    assert {k: v for k, v in version.items() if k != "manifest_json"} == {
        k: v for k, v in before["model_version"][0].items() if k != "manifest_json"
    }
    # The published model stays the one that was live: no second publish.
    assert len(after["publish_event"]) == 1

    again = db_command(database_url, tmp_path, "upgrade")
    assert again.returncode == 0 and read_rows(database_url) == after
    current = db_command(database_url, tmp_path, "current")
    assert f"Schema revision: {HEAD}" in current.stdout


def test_a_database_a_newer_binbot_upgraded_is_refused_in_one_line_and_kept(database_url, tmp_path):
    """flask-migrate printed "Error: Can't locate revision identified by '0099'", exit 1."""
    assert db_command(database_url, tmp_path, "upgrade").returncode == 0
    engine = sa.create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    before = read_rows(database_url)
    for command in ("upgrade", "current"):
        result = db_command(database_url, tmp_path, command)
        if command == "upgrade":
            assert result.returncode == 2 and result.stderr.strip() == (
                "binbot: error: the database's schema is at revision 0099, which this BinBot "
                f"does not know (its newest is {HEAD}): a newer BinBot made or upgraded it; run "
                "that version, or point DATABASE_URL at another database"
            )
        else:
            assert f"Schema revision: 0099 (this BinBot's newest: {HEAD})" in result.stdout
    assert read_rows(database_url) == before


def test_migrations_build_exactly_the_tables_the_code_declares(database_url, tmp_path):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from server import create_app
    from server.extensions import db
    from server.provision import upgrade_database

    app = create_app({"SQLALCHEMY_DATABASE_URI": database_url})
    upgrade_database(app, log=lambda _: None)
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, db.metadata)
        db.engine.dispose()
    assert differences == [], "a table changed without a migration: " + repr(differences)


def test_the_app_factory_only_builds_the_app(tmp_path):
    from server import create_app

    database = tmp_path / "not-yet" / "binbot.sqlite3"
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}"})
    assert app.url_map.bind("localhost").match("/api/models/current")
    assert not database.exists() and not database.parent.exists()
