"""Storing a labelled photo once, however often a flaky connection retries it.

A retry carries the same ``Idempotency-Key`` and is answered with the stored row; the same
photo sent again under another key is recognised by its content hash. When two copies race,
the database's unique constraints pick the winner and the loser answers with its row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import FileStorage

from server.errors import BadRequest, Unprocessable
from server.extensions import db
from server.registry.photos import CleanImage, sanitize_image, store_photo
from server.tables import Submission

MAX_KEY_LENGTH = 200


@dataclass
class Stored:
    """The answer to a submission: its row, and whether it was new."""

    submission: Submission
    created: bool = False
    replayed: bool = False
    duplicate: bool = False

    def as_dict(self) -> dict:
        body: dict = {"submission": self.submission.as_dict()}
        if self.replayed:
            body["replayed"] = True
        if self.duplicate:
            body["duplicate"] = True
        return body


def check_key(key: str | None) -> str | None:
    if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()):
        raise BadRequest(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters")
    return key


def find_by(column, value) -> Submission | None:
    return db.session.scalars(select(Submission).where(column == value)).first()


def parse_confidence(text: str | None) -> float | None:
    if text in (None, ""):
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"confidence must be a number, got {text!r}") from None
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise BadRequest(f"confidence must be between 0 and 1, got {value}")
    return value


def check_labels(form, labels: list[str]) -> tuple[str, str | None]:
    label = form.get("label", "")
    if label not in labels:
        raise Unprocessable(f"unknown label {label!r}; expected one of {labels}")
    predicted = form.get("predicted_label") or None
    if predicted is not None and predicted not in labels:
        raise Unprocessable(f"unknown predicted_label {predicted!r}")
    return label, predicted


def clean_upload(upload: FileStorage | None) -> CleanImage:
    if upload is None:
        raise BadRequest("missing file field 'image'")
    config = current_app.config
    return sanitize_image(
        upload.read(),
        max_pixels=config["BINBOT_MAX_IMAGE_PIXELS"],
        max_side=config["BINBOT_STORED_MAX_SIDE"],
        quality=config["BINBOT_STORED_JPEG_QUALITY"],
    )


def store_submission(
    form, upload: FileStorage | None, key: str | None, labels: list[str]
) -> Stored:
    """Validate a submission and store it once; a retry or a known photo gets the stored row."""
    key = check_key(key)
    if key is not None and (found := find_by(Submission.idempotency_key, key)) is not None:
        return Stored(found, replayed=True)
    label, predicted = check_labels(form, labels)
    confidence = parse_confidence(form.get("confidence"))
    clean = clean_upload(upload)
    if (found := find_by(Submission.sha256, clean.sha256)) is not None:
        return Stored(found, duplicate=True)

    written = store_photo(clean)
    submission = Submission(
        sha256=clean.sha256,
        idempotency_key=key,
        label=label,
        predicted_label=predicted,
        confidence=confidence,
        model_version=(form.get("model_version") or None),
        image_path=clean.relative_path,
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
        return Stored(winner, replayed=True)
    return Stored(submission, created=True)
