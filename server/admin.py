"""The admin API: review submissions, see model versions, publish and roll back."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify, request, send_file
from sqlalchemy import select

from server.auth import admin_required
from server.database import db
from server.errors import error_response
from server.jobs import cancel, enqueue, training_progress, validate_settings
from server.model_store import (
    REPORT_FILES,
    PublishRefused,
    publish,
    reports_dir,
    rollback,
    version_summary,
)
from server.models import ModelVersion, PublishEvent, Submission, TrainingJob
from server.review import SUBMISSION_ORDERS, ReviewError, review
from training.errors import BinbotError

admin = Blueprint("admin", __name__, url_prefix="/api/admin")
STATUSES = ("pending", "accepted", "rejected")
MAX_PAGE = 500


@admin.get("/submissions")
@admin_required
def list_submissions():
    """Filter by status, label and predicted label; order newest, oldest or low_confidence."""
    query = select(Submission)
    for field in ("status", "label", "predicted_label"):
        if (value := request.args.get(field)) is not None:
            query = query.where(getattr(Submission, field) == value)
    order = request.args.get("order", "newest")
    if order not in SUBMISSION_ORDERS:
        return error_response(f"order must be one of {sorted(SUBMISSION_ORDERS)}", 400)
    try:
        limit = min(int(request.args.get("limit", 100)), MAX_PAGE)
        offset = max(int(request.args.get("offset", 0)), 0)
    except ValueError:
        return error_response("limit and offset must be whole numbers", 400)
    rows = db.session.scalars(
        query.order_by(SUBMISSION_ORDERS[order]).limit(limit).offset(offset)
    ).all()
    return jsonify({"submissions": [r.as_dict() for r in rows], "limit": limit, "offset": offset})


@admin.post("/submissions/review")
@admin_required
def review_submissions():
    """Bulk accept, reject or relabel: {"ids": [...], "action": "...", "label": "..."}."""
    body: dict[str, Any] = request.get_json(silent=True) or {}
    try:
        rows = review(body.get("ids"), body.get("action"), body.get("label"))
    except ReviewError as exc:
        return error_response(str(exc), exc.status)
    return jsonify({"updated": len(rows), "submissions": [r.as_dict() for r in rows]})


@admin.get("/models")
@admin_required
def list_models():
    rows = db.session.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()
    history = db.session.scalars(select(PublishEvent).order_by(PublishEvent.id)).all()
    return jsonify(
        {
            "models": [version_summary(r) for r in rows],
            "history": [
                {"version": e.version, "action": e.action, "forced": e.forced,
                 "reason": e.reason, "at": e.at.isoformat()}
                for e in history
            ],
        }
    )  # fmt: skip


@admin.post("/models/<version>/publish")
@admin_required
def publish_version(version: str):
    body = request.get_json(silent=True) or {}
    try:
        row = publish(version, force=bool(body.get("force")), reason=body.get("reason"))
    except LookupError as exc:
        return error_response(str(exc), 404)
    except PublishRefused as exc:
        return error_response(str(exc), 409)
    except BinbotError as exc:
        return error_response(str(exc), 400)
    return jsonify({"published": version_summary(row)})


@admin.get("/models/<version>/report/<name>")
@admin_required
def model_report(version: str, name: str):
    """A version's evaluation report: report.md, metrics.json, confusion_matrix.png, ..."""
    if name not in REPORT_FILES:
        return error_response(f"report files are {list(REPORT_FILES)}", 404)
    path = reports_dir(version) / name
    if not path.is_file():
        return error_response(f"no {name} for model version {version!r}", 404)
    return send_file(path)


@admin.post("/models/rollback")
@admin_required
def rollback_version():
    try:
        row = rollback()
    except BinbotError as exc:
        return error_response(str(exc), 409)
    return jsonify({"published": version_summary(row)})


@admin.post("/jobs")
@admin_required
def start_job():
    """Queue a retraining: {"settings": {"head_epochs": 5, ...}} (all optional)."""
    body = request.get_json(silent=True) or {}
    try:
        settings = validate_settings(body.get("settings"))
    except ValueError as exc:
        return error_response(str(exc), 400)
    return jsonify({"job": enqueue(settings).as_dict()}), 202


@admin.get("/jobs")
@admin_required
def list_jobs():
    rows = db.session.scalars(select(TrainingJob).order_by(TrainingJob.id.desc()).limit(100)).all()
    return jsonify({"jobs": [r.as_dict() for r in rows]})


@admin.get("/jobs/<int:job_id>")
@admin_required
def job_status(job_id: int):
    job = db.session.get(TrainingJob, job_id)
    if job is None:
        return error_response(f"no job {job_id}", 404)
    return jsonify({"job": job.as_dict(), "training": training_progress(job.log)})


@admin.post("/jobs/<int:job_id>/cancel")
@admin_required
def cancel_job(job_id: int):
    try:
        job = cancel(job_id)
    except LookupError as exc:
        return error_response(str(exc), 404)
    except ValueError as exc:
        return error_response(str(exc), 409)
    return jsonify({"job": job.as_dict()})
