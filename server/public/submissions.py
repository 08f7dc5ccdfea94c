"""Storing a labelled photo once, however often a flaky connection retries it.

A retry carries the same ``Idempotency-Key`` and is answered with the stored row, but only if
it is the same request (same photo bytes, same label): another request under a used key is
refused (422), never answered as a replay and lost. The same photo sent again under another
key is recognised by its content hash and answered without revealing the first submission;
when it says another kind or name, that answer is kept beside the stored one for reviewers
(``OtherAnswer``). When two copies race, the database's unique constraints pick the winner.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from werkzeug.datastructures import FileStorage

from binbot.errors import shortened
from conversion.manifest import version_pattern
from server.errors import (
    FULL_RETRY_SECONDS,
    BadRequest,
    InsufficientStorage,
    Unavailable,
    Unprocessable,
)
from server.extensions import db
from server.limits import configured
from server.public.names import by_key, clean_name, name_key
from server.registry.kinds import version_label_keys
from server.registry.photos import CleanImage, DecodeLimits, sanitize_image, store_photo
from server.tables import OtherAnswer, Submission, utcnow
from server.untrusted import request_key


@dataclass
class Stored:
    """The answer to a submission: its row, and whether it was new, a retry or a known photo."""

    submission: Submission
    created: bool = False
    replayed: bool = False
    duplicate: bool = False

    def as_dict(self) -> dict:
        if self.duplicate:
            # Someone already sent this photo: say it is in, and nothing of their submission.
            return {"duplicate": True, "received": True}
        body: dict = {"submission": self.submission.as_dict()}
        if self.replayed:
            body["replayed"] = True
        return body


def check_model_version(text: str | None) -> str | None:
    """The version the photo was classified with: a version name, or nothing."""
    if not text:
        return None
    if not version_pattern().fullmatch(text):
        raise Unprocessable(f"model_version is not a model version: {shortened(text)!r}")
    return text


def check_replay(found: Submission, raw: bytes, label: str | None) -> None:
    """A retry must be the same request: same photo, same label (IETF Idempotency-Key)."""
    if found.upload_sha256 and found.upload_sha256 != hashlib.sha256(raw).hexdigest():
        raise Unprocessable("this Idempotency-Key was already used with another photo")
    said = found.label or found.proposed_name  # a proposal, when its kind had been deleted
    if label and name_key(label) != name_key(said):
        raise Unprocessable(
            f"this Idempotency-Key was already used with label {said!r}, not {shortened(label)!r}"
        )


def check_capacity() -> None:
    """Refuse new photos, for now, while review lags far behind or the disk is nearly full."""
    config = current_app.config
    pending = db.session.scalar(
        select(func.count(Submission.id)).where(Submission.status == "pending")
    )
    if pending >= config["BINBOT_MAX_PENDING"]:
        raise Unavailable(
            f"the review queue is full ({pending} photos wait for review); try again later",
            headers={"Retry-After": str(FULL_RETRY_SECONDS)},
        )
    folder = Path(config["BINBOT_DATA_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.disk_usage(folder).free < config["BINBOT_MIN_FREE_BYTES"]:
        raise InsufficientStorage(
            "the server's disk is nearly full; try again later",
            headers={"Retry-After": str(FULL_RETRY_SECONDS)},
        )


def find_by(column, value) -> Submission | None:
    return db.session.scalars(select(Submission).where(column == value)).first()


def parse_confidence(text: str | None) -> float | None:
    if text in (None, ""):
        return None
    try:
        value = float(text)
    except ValueError:
        raise BadRequest(f"confidence must be a number, got {shortened(text)!r}") from None
    if not math.isfinite(value) or not 0 <= value <= 1:
        raise BadRequest(f"confidence must be between 0 and 1, got {value}")
    return value


@dataclass(frozen=True)
class Said:
    """What the person says it is: one of the kinds, or a name of their own."""

    label: str | None
    proposed_name: str | None = None
    proposed_key: str | None = None
    predicted: str | None = None


# The fields of a submission; each may come once.
SUBMISSION_FIELDS = ("label", "predicted_label", "proposed_name", "confidence", "model_version")


def check_fields_once(form, files) -> None:
    """A field sent twice is ambiguous (which of two labels did the person choose?): refuse
    the request rather than keep one of them."""
    counts = {name: len(form.getlist(name)) for name in SUBMISSION_FIELDS}
    counts["image"] = len(files.getlist("image"))
    for name, count in counts.items():
        if count > 1:
            raise BadRequest(f"field {name!r} sent {count} times; a submission has one")


def check_labels(form, labels: list[str], model_version: str | None = None) -> Said:
    """The kind the photo is said to be, by key: a model trained on a folder ``mouse`` says
    ``mouse`` for the kind ``Mouse``, which is stored under the kind's own name.
    ``model_version`` (checked): the version the photo was classified with."""
    known = by_key(labels)
    predicted = form.get("predicted_label") or None
    if predicted is not None and name_key(predicted) not in known:
        raise Unprocessable(f"unknown predicted_label {shortened(predicted)!r}")
    label = form.get("label") or ""
    if label and form.get("proposed_name"):
        # Keeping either would silently drop what the person said with the other.
        raise Unprocessable("send a kind (label) or a name of your own (proposed_name), not both")
    if "proposed_name" in form and not label:
        return proposal(form.get("proposed_name"), known, predicted)
    if label and name_key(label) not in known and offered_by(model_version, label):
        # A correction that waited offline while an admin deleted its kind: the app offered the
        # kind (its model had it), so what the person said is kept as a proposal under that
        # name, where the deleted kind's own photos went, rather than refused and lost.
        return proposal(label, known, predicted)
    if not label or name_key(label) not in known:
        raise Unprocessable(
            f"unknown label {shortened(label)!r}; expected one of {labels}, or a proposed_name"
        )
    return Said(known[name_key(label)], predicted=predicted)


def proposal(text: str | None, known: dict[str, str], predicted: str | None) -> Said:
    """A name of the person's own ("Something else: ..."), counted against the proposals limit."""
    configured("proposals per day").hit()
    name, key = clean_name(text, field="proposed_name")
    # "Something else: battery" names a kind the model has (the person did not find it in
    # the picker, or queued it offline before the kind existed): it is that kind.
    if key in known:
        return Said(known[key], predicted=predicted)
    return Said(None, name, key, predicted)


def offered_by(version: str | None, label: str) -> bool:
    """Whether the model version the photo was classified with (a registered one) had the
    label: then the app offered it to the person."""
    return version is not None and name_key(label) in version_label_keys(version)


def clean_upload(raw: bytes) -> CleanImage:
    config = current_app.config
    limits = DecodeLimits(
        max_pixels=config["BINBOT_MAX_IMAGE_PIXELS"],
        max_full_decode_pixels=min(
            config["BINBOT_MAX_FULL_DECODE_PIXELS"], config["BINBOT_MAX_IMAGE_PIXELS"]
        ),
        max_aspect=config["BINBOT_MAX_ASPECT_RATIO"],
        min_side=config["BINBOT_MIN_IMAGE_SIDE"],
    )
    return sanitize_image(
        raw,
        limits=limits,
        max_side=config["BINBOT_STORED_MAX_SIDE"],
        quality=config["BINBOT_STORED_JPEG_QUALITY"],
    )


def store_submission(
    form, upload: FileStorage | None, key: str | None, labels: list[str]
) -> Stored:
    """Validate a submission and store it once; a retry or a known photo gets the stored row."""
    configured("uploads per minute").hit()
    configured("uploads per day").hit()
    key = request_key(key)
    if upload is None:
        raise BadRequest("missing file field 'image'")
    raw = upload.read()
    if key is not None and (found := find_by(Submission.idempotency_key, key)) is not None:
        check_replay(found, raw, form.get("label"))
        return Stored(found, replayed=True)
    model_version = check_model_version(form.get("model_version"))
    said = check_labels(form, labels, model_version)
    confidence = parse_confidence(form.get("confidence"))
    check_capacity()
    clean = clean_upload(raw)
    if (found := find_by(Submission.sha256, clean.sha256)) is not None:
        note_other_answer(found, said)
        return Stored(found, duplicate=True)

    written = store_photo(clean)
    submission = Submission(
        sha256=clean.sha256,
        idempotency_key=key,
        label=said.label,
        proposed_name=said.proposed_name,
        proposed_key=said.proposed_key,
        predicted_label=said.predicted,
        confidence=confidence,
        model_version=model_version,
        upload_sha256=hashlib.sha256(raw).hexdigest(),
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
        if winner.sha256 == clean.sha256 and winner.idempotency_key != key:
            note_other_answer(winner, said)
            return Stored(winner, duplicate=True)
        return Stored(winner, replayed=True)
    return Stored(submission, created=True)


MAX_OTHER_ANSWERS = 10  # distinct other answers kept per photo; more only add to their counts


def answer_key(label: str | None, proposed_key: str | None) -> str:
    """What a photo was said to be, by key: its kind, or the name given for something else."""
    return name_key(label) if label else proposed_key or ""


def note_other_answer(stored: Submission, said: Said) -> None:
    """Keep what the same photo was sent as this time, when that is not its stored answer: a
    person who picked the wrong kind and sent the photo again with the right one, or two people
    who disagree. Counted once per distinct answer, and only for reviewers to see."""
    key = answer_key(said.label, said.proposed_key)[:60]
    if key == answer_key(stored.label, stored.proposed_key):
        return
    same = (OtherAnswer.submission_id == stored.id) & (OtherAnswer.key == key)
    counted = update(OtherAnswer).where(same).values(count=OtherAnswer.count + 1, last_at=utcnow())
    if db.session.execute(counted).rowcount == 0:
        kept = db.session.scalar(
            select(func.count(OtherAnswer.id)).where(OtherAnswer.submission_id == stored.id)
        )
        if kept >= MAX_OTHER_ANSWERS:
            return
        try:
            with db.session.begin_nested():  # another request may add the same answer now
                db.session.add(
                    OtherAnswer(
                        submission_id=stored.id,
                        key=key,
                        label=said.label,
                        proposed_name=said.proposed_name,
                    )
                )
        except IntegrityError:
            db.session.execute(counted)
    db.session.commit()
    db.session.expire(stored, ["other_answers"])
