"""Model bundles on disk and their versions in the database.

A bundle is copied into ``DATA_DIR/models/<version>/`` and checked against its manifest
before its row exists, so a published version never points at missing or damaged files.
Publishing flips one flag inside a single transaction: clients see the old manifest or the
new one, never a mix.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from flask import current_app
from sqlalchemy import select, update

from conversion.manifest import check_bundle, read_manifest
from server.database import db
from server.models import ModelVersion, utcnow
from training.errors import BinbotError


def models_dir() -> Path:
    return Path(current_app.config["BINBOT_DATA_DIR"]) / "models"


def bundle_dir(version: str) -> Path:
    return models_dir() / version


def published_version() -> ModelVersion | None:
    return db.session.scalars(select(ModelVersion).where(ModelVersion.published)).first()


def register_bundle(source: Path) -> ModelVersion:
    """Copy a checked bundle into the store and record it (unpublished)."""
    problems = check_bundle(source)
    if problems:
        raise BinbotError(f"bundle {source} does not match its manifest: {'; '.join(problems)}")
    manifest = read_manifest(source)
    version = manifest["version"]
    if "/" in version or version in ("", ".", ".."):
        raise BinbotError(f"unusable version string {version!r}")
    existing = db.session.scalars(select(ModelVersion).where(ModelVersion.version == version))
    if (found := existing.first()) is not None:
        return found
    target = bundle_dir(version)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{version}-"))
    try:
        for entry in [*manifest["files"], {"path": "manifest.json"}]:
            shutil.copyfile(source / entry["path"], staging / entry["path"])
        if check_bundle(staging):
            raise BinbotError(f"copy of bundle {version} is damaged")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    row = ModelVersion(version=version, manifest_json=json.dumps(manifest))
    db.session.add(row)
    db.session.commit()
    return row


def publish(version: str) -> ModelVersion:
    """Make ``version`` the published one, atomically."""
    row = db.session.scalars(select(ModelVersion).where(ModelVersion.version == version)).first()
    if row is None:
        raise BinbotError(f"no model version {version!r}")
    if check_bundle(bundle_dir(version)):
        raise BinbotError(f"files of model version {version!r} are missing or damaged")
    db.session.execute(update(ModelVersion).values(published=False))
    row.published = True
    row.published_at = utcnow()
    db.session.commit()
    return row


def ensure_published_model() -> ModelVersion | None:
    """On a fresh database, register and publish the shipped starter model."""
    current = published_version()
    if current is not None:
        return current
    starter = Path(current_app.config["BINBOT_STARTER_MODEL"])
    if not (starter / "manifest.json").exists():
        current_app.logger.warning("no published model and no starter model at %s", starter)
        return None
    return publish(register_bundle(starter).version)
