"""Model versions: their bundles on disk, their rows in the database, and which one is live.

A bundle is copied into ``DATA_DIR/models/<version>/`` and checked against its manifest
(schema, sizes, hashes) before its row exists, so a published version never points at
missing or damaged files. Publishing flips one flag inside a single transaction: clients see
the old manifest or the new one, never a mix. The publish rules (the quality gate, a reason
for forcing it, rollback) live here and nowhere else.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from binbot.files import staged_folder
from conversion.manifest import WARM_START_DIR, check_bundle, read_manifest, version_pattern
from server.errors import BadRequest, Conflict, NotFound, Unprocessable
from server.extensions import db, write_lock
from server.tables import ModelVersion, PublishEvent, iso_utc, utcnow

# A version's evaluation report: what admins may download, and as what.
REPORT_FILES = {
    "report.md": "text/markdown",
    "metrics.json": "application/json",
    "confusion_matrix.png": "image/png",
    "misclassified.png": "image/png",
}


class PublishRefused(Conflict):
    """Publishing would make phones run a worse model, or bring back a kind an admin deleted;
    force it with a reason to override."""


def models_dir() -> Path:
    return Path(current_app.config["BINBOT_DATA_DIR"]) / "models"


def bundle_dir(version: str) -> Path:
    return models_dir() / version


def reports_dir(version: str) -> Path:
    return Path(current_app.config["BINBOT_DATA_DIR"]) / "reports" / version


def report_file(version: str, name: str) -> Path:
    """A file of a version's evaluation report; NotFound for anything else."""
    if name not in REPORT_FILES:
        raise NotFound(f"report files are {list(REPORT_FILES)}")
    path = reports_dir(version) / name
    if not path.is_file():
        raise NotFound(f"no {name} for model version {version!r}")
    return path


def read_metrics(version: str) -> dict[str, Any]:
    """A version's evaluation metrics (per-image predictions, data counts), or {}."""
    path = reports_dir(version) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def store_report(version: str, evaluation: Path) -> None:
    """Keep a version's evaluation report (metrics, confusion matrix, misclassified images),
    whole or (a full disk) not at all: a cut metrics.json broke the console's comparison."""
    with staged_folder(reports_dir(version)) as staging:
        for name in REPORT_FILES:
            if (evaluation / name).is_file():
                shutil.copyfile(evaluation / name, staging / name)


def warm_start_dir(version: str) -> Path | None:
    """The Keras model a version was converted from, kept for retraining; None if absent."""
    folder = bundle_dir(version) / WARM_START_DIR
    return folder if (folder / "model.keras").is_file() else None


def published_version() -> ModelVersion | None:
    return db.session.scalars(
        select(ModelVersion)
        .where(ModelVersion.published)
        .execution_options(populate_existing=True)  # not a row as this session read it earlier
    ).first()


# PostgreSQL's advisory lock key for changing the live version (any constant no other lock
# uses: "BinB" in ASCII).
LIVE_VERSION_LOCK = 0x42696E42


@contextmanager
def live_version_change() -> Iterator[ModelVersion | None]:
    """The live version (None when there is none), read under a lock held until the
    transaction ends: for a request that decides from what is live and then changes it.

    Publish, rollback, kind deletion and filing photos under a kind each decide from the live
    version or the kinds (the quality gate, the version the admin saw live, the kinds it
    knows, whether a kind still exists). Two such requests at the same moment (a double click,
    two admins, a replayed request) used to decide from the same state: eight rollbacks "from
    bad-3" sent together all succeeded and each recorded a rollback, a kind could be deleted
    while a model that knows it was being published, and photos filed under a kind as it was
    being deleted would have been learned as that kind again. Under this lock each one reads
    what the one before it committed. A request that fails inside gives the lock back at once.
    Nothing is written before it in the same transaction, so it never waits holding a row."""
    write_lock(LIVE_VERSION_LOCK, ModelVersion)
    try:
        yield published_version()
    except BaseException:
        db.session.rollback()
        raise


def find_version(version: str) -> ModelVersion:
    row = db.session.scalars(select(ModelVersion).where(ModelVersion.version == version)).first()
    if row is None:
        raise NotFound(f"no model version {version!r}")
    return row


def register_bundle(source: Path) -> ModelVersion:
    """Copy a checked bundle into the store and record it (unpublished)."""
    problems = check_bundle(source)
    if problems:
        raise Unprocessable(f"bundle {source} does not match its manifest: {'; '.join(problems)}")
    manifest = read_manifest(source)
    version = manifest["version"]
    existing = db.session.scalars(select(ModelVersion).where(ModelVersion.version == version))
    if (found := existing.first()) is not None:
        return found
    target = bundle_dir(version)
    if not target.exists() or check_bundle(target):  # else another process stored it first
        with staged_folder(target) as staging:
            for entry in [*manifest["files"], {"path": "manifest.json"}]:
                shutil.copyfile(source / entry["path"], staging / entry["path"])
            if (source / WARM_START_DIR).is_dir():
                shutil.copytree(source / WARM_START_DIR, staging / WARM_START_DIR)
            if check_bundle(staging):
                raise Conflict(f"copy of bundle {version} is damaged")
    if (source / "evaluation").is_dir():
        store_report(version, source / "evaluation")
    row = ModelVersion(version=version, manifest_json=json.dumps(manifest))
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:  # registered concurrently by another process
        db.session.rollback()
        return find_version(version)
    return row


def gate(candidate: ModelVersion, current: ModelVersion | None, margin: float) -> str | None:
    """Why ``candidate`` may not replace ``current`` (None when it may).

    Figures measured with the converted models are compared only where they say something:
    test accuracy when both were measured on the same test images (same fingerprint); the
    mean recall over the kinds both know when the candidate's test set only added kinds (a new
    kind's held-out photos), since those kinds' test photos are the same. Otherwise nothing.
    """
    if current is None or current.version == candidate.version:
        return None
    new, old = candidate.manifest.get("metrics", {}), current.manifest.get("metrics", {})
    fingerprint = new.get("test_set_fingerprint")
    if fingerprint is not None and fingerprint == old.get("test_set_fingerprint"):
        figure, new_value, old_value = (
            "test accuracy",
            new.get("test_accuracy"),
            old.get("test_accuracy"),
        )
    else:
        shared = sorted(
            set(new.get("per_class_recall") or {}) & set(old.get("per_class_recall") or {})
        )
        if not shared or not set(current.manifest["labels"]) <= set(candidate.manifest["labels"]):
            return None
        figure = f"mean recall on the {len(shared)} kinds both know"
        new_value = sum(new["per_class_recall"][k] for k in shared) / len(shared)
        old_value = sum(old["per_class_recall"][k] for k in shared) / len(shared)
    if new_value is None or old_value is None or new_value >= old_value - margin:
        return None
    return (
        f"{candidate.version} has {figure} {new_value:.2%}, more than {margin:.1%} "
        f"below the published {current.version} ({old_value:.2%})"
    )


MAX_REASON = 500  # characters of a forced publish's reason, kept in the history


def publish(
    version: str, *, force: bool = False, reason: str | None = None, action: str = "publish"
) -> ModelVersion:
    """Make ``version`` the published one, in one transaction, after the quality gate."""
    if not isinstance(force, bool):
        raise BadRequest("force must be true or false")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise BadRequest(f"the reason must be text of at most {MAX_REASON} characters")
    row = find_version(version)
    if check_bundle(bundle_dir(version)):
        raise Conflict(f"files of model version {version!r} are missing or damaged")
    from server.registry.kinds import deleted_kinds_in, ensure_kinds  # kinds import this module

    with live_version_change() as current:
        refusals = [
            gate(row, current, current_app.config["BINBOT_PUBLISH_MARGIN"]),
            deleted_kinds_in(version, row.manifest["labels"]),
        ]
        if any(refusals) and not force:
            reasons = "; ".join(r for r in refusals if r)
            raise PublishRefused(f"{reasons}; pass force with a reason to publish anyway")
        if force and not (reason or "").strip():
            raise BadRequest("a forced publish needs a reason")
        ensure_kinds(row.manifest["labels"])
        db.session.execute(update(ModelVersion).values(published=False))
        row.published = True
        row.published_at = utcnow()
        db.session.add(PublishEvent(version=version, action=action, forced=force, reason=reason))
        db.session.commit()
    return row


def live_stack() -> list[str]:
    """The versions that were live, oldest first, as the history says: a publish pushes its
    version (unless it is live already), a rollback pops the version it rolled back from."""
    stack: list[str] = []
    for event in publish_history():
        if event.action == "rollback" and stack:
            stack.pop()
        if not stack or stack[-1] != event.version:
            stack.append(event.version)
    return stack


def rollback(from_version: str | None = None) -> ModelVersion:
    """Publish again the version that was live before the current one was published. Never
    a version rolled back from: a second rollback goes further back, where "the last other
    version in the history" toggled back to the bad one. ``from_version``: the version the
    admin saw live; when it is no longer live (a double click, a second admin, a replay),
    nothing changes."""
    if from_version is not None and not version_pattern().fullmatch(from_version):
        raise BadRequest(f"from must be a model version, got {from_version[:40]!r}")
    with live_version_change() as current:
        if from_version is not None and (current is None or current.version != from_version):
            now = f"{current.version} is live" if current else "no version is live"
            raise Conflict(f"{from_version} is no longer live ({now}): nothing was rolled back")
        target = rollback_target()
        if target is None:
            raise Conflict("there is no earlier published version to roll back to")
        return publish(target, force=True, reason="rollback", action="rollback")


def rollback_target() -> str | None:
    """The version a rollback would publish again, so that the console can name it on the
    button (an admin should know what a click brings back); None when there is none."""
    current = published_version()
    stack = live_stack()
    while current and stack and stack[-1] == current.version:
        stack.pop()
    return stack[-1] if stack else None


def publish_history(newest_first: bool = False) -> list[PublishEvent]:
    order = PublishEvent.id.desc() if newest_first else PublishEvent.id
    return list(db.session.scalars(select(PublishEvent).order_by(order)))


def version_summary(row: ModelVersion) -> dict[str, Any]:
    """What admins see of a version: dates, size, test figures, its report files."""
    manifest = row.manifest
    metrics = manifest.get("metrics", {})
    return {
        "version": row.version,
        "created_at": manifest.get("created_at"),
        "published": row.published,
        "published_at": iso_utc(row.published_at),
        "bundle_bytes": manifest.get("bundle_bytes"),
        "quantization": manifest.get("quantization", {}).get("mode"),
        "test_accuracy": metrics.get("test_accuracy"),
        "test_images": metrics.get("test_images"),
        "per_class_recall": metrics.get("per_class_recall"),
        "dataset_fingerprint": manifest.get("training", {}).get("dataset_fingerprint"),
        "test_set_fingerprint": metrics.get("test_set_fingerprint"),
        "report": sorted(p.name for p in reports_dir(row.version).glob("*")),
    }
