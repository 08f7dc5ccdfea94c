"""The database tables. Their history is in ``server/migrations``: a change here needs a
migration there (``flask --app server db migrate -m "..."``, then read what it wrote)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from server.extensions import db


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A stored time as an aware UTC datetime. SQLite gives back the UTC it was given, without
    a zone; PostgreSQL gives it in the connection's time zone, which need not be UTC, so it is
    converted (``replace(tzinfo=UTC)`` on it would shift the moment)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def utc_text(moment: datetime, seconds: bool = False) -> str:
    """A stored time in UTC, for people: "2026-12-07 19:45 UTC"."""
    return as_utc(moment).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else "")) + " UTC"


def iso_utc(moment: datetime | None) -> str | None:
    """A stored time for API clients: ISO 8601 with its offset, "2026-12-07T19:45:00+00:00",
    whichever database stored it (SQLite's came back without a zone, so a client could not
    tell UTC from its own local time)."""
    return as_utc(moment).isoformat() if moment is not None else None


class ModelVersion(db.Model):
    """A converted model bundle stored under the data folder; at most one is published."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(100), unique=True)
    manifest_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_json)


class Submission(db.Model):
    """A user's photo with the label they say is right; stored once per content hash."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    # The sha256 of the bytes as uploaded: a retry with the same key must send the same photo.
    upload_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)  # None: a proposal
    # "Something else": the name the person gave, and its key for grouping (server.public.names).
    proposed_name: Mapped[str | None] = mapped_column(String(60), nullable=True)
    proposed_key: Mapped[str | None] = mapped_column(String(60), nullable=True, index=True)
    predicted_label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    confidence: Mapped[float | None] = mapped_column(Float, nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(100), nullable=True)
    image_path: Mapped[str] = mapped_column(String(300))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    other_answers: Mapped[list[OtherAnswer]] = relationship(
        lazy="selectin", order_by="OtherAnswer.id", cascade="all, delete-orphan"
    )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "label": self.label,
            "proposed_name": self.proposed_name,
            "other_answers": [answer.as_dict() for answer in self.other_answers],
            "predicted_label": self.predicted_label,
            "confidence": self.confidence,
            "model_version": self.model_version,
            "status": self.status,
            "width": self.width,
            "height": self.height,
            "sha256": self.sha256,
            "created_at": iso_utc(self.created_at),
        }


class OtherAnswer(db.Model):
    """The same photo sent again as something else: a kind or a name other than the stored
    one. The photo is stored once, with its first answer, so without this a person who sent
    the wrong kind and then the right one lost the correction, and reviewers never saw that
    the answers disagree."""

    __table_args__ = (UniqueConstraint("submission_id", "key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    submission_id: Mapped[int] = mapped_column(
        ForeignKey("submission.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[str] = mapped_column(String(60))  # server.public.names: one row per answer
    label: Mapped[str | None] = mapped_column(String(200), nullable=True)
    proposed_name: Mapped[str | None] = mapped_column(String(60), nullable=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    last_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "proposed_name": self.proposed_name, "count": self.count}


class AdminToken(db.Model):
    """An admin credential; only its SHA-256 is stored, the token is shown once."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Whose it is or what it is for, and when it last opened the API or the console: what
    # tells several tokens apart when one must be revoked.
    note: Mapped[str | None] = mapped_column(String(100), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    def as_dict(self) -> dict[str, Any]:
        """What tells tokens apart; never the token (only its hash is kept) nor the hash."""
        return {
            "id": self.id,
            "note": self.note,
            "created_at": iso_utc(self.created_at),
            "last_used_at": iso_utc(self.last_used_at),
        }


class PublishEvent(db.Model):
    """Every publish and rollback, newest last: what was live when, and why."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(20))  # publish | rollback
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class TrainingJob(db.Model):
    """A retraining an admin asked for; a worker process claims and runs it."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    settings_json: Mapped[str] = mapped_column(Text, default="{}")
    # The key of the request that asked for it: the same request again is this job, not another.
    request_key: Mapped[str | None] = mapped_column(String(200), unique=True, nullable=True)
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    progress: Mapped[str | None] = mapped_column(Text, nullable=True)
    log: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result_json: Mapped[str | None] = mapped_column(Text, nullable=True)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "settings": json.loads(self.settings_json or "{}"),
            "worker": self.worker,
            "created_at": iso_utc(self.created_at),
            "started_at": iso_utc(self.started_at),
            "heartbeat_at": iso_utc(self.heartbeat_at),
            "finished_at": iso_utc(self.finished_at),
            "progress": self.progress,
            "log": self.log,
            "error": self.error,
            "result": json.loads(self.result_json) if self.result_json else None,
        }


class JobEvent(db.Model):
    """Something a job reported as data: a phase started, an epoch ended, a step began."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(
        ForeignKey("training_job.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))  # phase | epoch | step
    data_json: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.data_json)


class RateCount(db.Model):
    """Requests counted for a limit (``server.limits``): one row per key and time window."""

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[int] = mapped_column(Integer, primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)


class ConsoleSession(db.Model):
    """A logged-in console session: the cookie names it, logging out or revoking the token
    it was opened with deletes it, and with it the session."""

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the cookie's id
    token_id: Mapped[int] = mapped_column(
        ForeignKey("admin_token.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class WorkerCrash(db.Model):
    """A retraining worker process that died; `binbot serve` started another. The console
    warns about a crash loop."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Kind(db.Model):
    """A kind of item BinBot knows or is learning, with its disposal advice (``Advice``)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)
    key: Mapped[str] = mapped_column(String(60), unique=True)  # server.public.names
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class KindDeletion(db.Model):
    """A kind an admin deleted (the last time, per key), so that publishing a model trained
    while the kind still existed does not bring it back unnoticed, with the general advice."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(60))
    deleted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Advice(db.Model):
    """One revision of a kind's disposal advice; the newest is the one phones get. Every edit
    is a new row, so the advice's history is kept and its version is this table's largest id."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind_id: Mapped[int] = mapped_column(ForeignKey("kind.id", ondelete="CASCADE"), index=True)
    advice_json: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The revision this one was edited from. Unique: a revision is replaced once, so of two
    # admins who saved edits of the same text, the second is told instead of overwriting.
    replaces_id: Mapped[int | None] = mapped_column(Integer, unique=True, nullable=True)

    @property
    def advice(self) -> dict[str, Any]:
        return json.loads(self.advice_json)
