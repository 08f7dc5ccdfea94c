"""The public API the web client talks to: labels, the published model, its files, submissions."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

from flask import Blueprint, abort, current_app, jsonify, request, send_file, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from server.database import db
from server.errors import error_response
from server.guidance import guidance_for
from server.model_store import bundle_dir, published_version
from server.models import ModelVersion, Submission
from server.uploads import RejectedUpload, sanitize_image

api = Blueprint("api", __name__, url_prefix="/api")
ONE_YEAR = 365 * 24 * 3600
MAX_KEY_LENGTH = 200


def _published_or_503() -> ModelVersion:
    current = published_version()
    if current is None:
        abort(503, description="no model is published yet")
    return current


@api.get("/labels")
def labels():
    manifest = _published_or_503().manifest
    return jsonify(
        {
            "model_version": manifest["version"],
            "labels": [{"name": n, "guidance": guidance_for(n)} for n in manifest["labels"]],
        }
    )


@api.get("/models/current")
def current_model():
    """The published manifest and where its files are. Revalidated on every check (no-cache)."""
    row = _published_or_503()
    manifest = row.manifest
    etag = f'"{row.version}"'
    if request.if_none_match and row.version in request.if_none_match:
        response = current_app.response_class(status=304)
    else:
        files = [
            {**f, "url": url_for("api.model_file", version=row.version, name=f["path"])}
            for f in manifest["files"]
        ]
        model_url = url_for("api.model_file", version=row.version, name="model.json")
        response = jsonify(
            {
                "version": row.version,
                "published_at": row.published_at.isoformat() if row.published_at else None,
                "base_url": model_url.rsplit("/", 1)[0] + "/",
                "model_url": model_url,
                "files": files,
                "manifest": manifest,
            }
        )
    response.headers["ETag"] = etag
    response.cache_control.no_cache = True
    return response


@api.get("/models/<version>/<path:name>")
def model_file(version: str, name: str):
    """A file of a model version: immutable, so cached for a year and revalidated by hash."""
    row = db.session.scalars(select(ModelVersion).where(ModelVersion.version == version)).first()
    if row is None:
        abort(404, description=f"no model version {version!r}")
    listed = {f["path"]: f["sha256"] for f in row.manifest["files"]}
    if name not in listed:  # only files the manifest names: no path tricks
        abort(404, description=f"model {version} has no file {name!r}")
    path = bundle_dir(version) / name
    mimetype = "application/json" if name.endswith(".json") else "application/octet-stream"
    response = send_file(path, mimetype=mimetype, etag=listed[name], conditional=True)
    response.cache_control.public = True
    response.cache_control.max_age = ONE_YEAR
    response.cache_control.immutable = True
    return response


@api.post("/submissions")
def create_submission():
    """Store a labelled photo once, however often a flaky connection retries it."""
    key = request.headers.get("Idempotency-Key")
    if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()):
        return error_response(
            f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters", 400
        )
    if key is not None:
        replay = db.session.scalars(select(Submission).where(Submission.idempotency_key == key))
        if (found := replay.first()) is not None:
            return jsonify({"submission": found.as_dict(), "replayed": True}), 200

    labels = _published_or_503().manifest["labels"]
    label = request.form.get("label", "")
    if label not in labels:
        return error_response(f"unknown label {label!r}; expected one of {labels}", 422)
    predicted = request.form.get("predicted_label") or None
    if predicted is not None and predicted not in labels:
        return error_response(f"unknown predicted_label {predicted!r}", 422)
    confidence = _confidence(request.form.get("confidence"))
    upload = request.files.get("image")
    if upload is None:
        return error_response("missing file field 'image'", 400)

    config = current_app.config
    clean = sanitize_image(
        upload.read(),
        max_pixels=config["BINBOT_MAX_IMAGE_PIXELS"],
        max_side=config["BINBOT_STORED_MAX_SIDE"],
        quality=config["BINBOT_STORED_JPEG_QUALITY"],
    )
    same_photo = db.session.scalars(select(Submission).where(Submission.sha256 == clean.sha256))
    if (found := same_photo.first()) is not None:
        return jsonify({"submission": found.as_dict(), "duplicate": True}), 200

    relative = f"submissions/{clean.sha256[:2]}/{clean.sha256}.jpg"
    written = _write_atomically(Path(config["BINBOT_DATA_DIR"]) / relative, clean.data)
    submission = Submission(
        sha256=clean.sha256,
        idempotency_key=key,
        label=label,
        predicted_label=predicted,
        confidence=confidence,
        model_version=(request.form.get("model_version") or None),
        image_path=relative,
        width=clean.width,
        height=clean.height,
    )
    db.session.add(submission)
    try:
        db.session.commit()
    except IntegrityError:
        # A concurrent retry (same key) or the same photo won the race: answer with its row.
        db.session.rollback()
        winner = db.session.scalars(
            select(Submission).where(
                (Submission.sha256 == clean.sha256) | (Submission.idempotency_key == key)
            )
        ).first()
        if written and (winner is None or winner.sha256 != clean.sha256):
            written.unlink(missing_ok=True)  # nobody references the file this call wrote
        if winner is None:
            raise
        return jsonify({"submission": winner.as_dict(), "replayed": True}), 200
    return jsonify({"submission": submission.as_dict()}), 201


def _confidence(text: str | None) -> float | None:
    if text in (None, ""):
        return None
    try:
        value = float(text)
    except ValueError:
        raise RejectedUpload(f"confidence must be a number, got {text!r}") from None
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise RejectedUpload(f"confidence must be between 0 and 1, got {value}")
    return value


def _write_atomically(path: Path, data: bytes) -> Path | None:
    """Write via a temporary file and rename; returns the path if this call created it."""
    if path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
