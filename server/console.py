"""The admin console: server-rendered pages over the same rules as the admin API.

Submissions (gallery, filters, bulk review, what training would add), Training (start, live
progress, log, cancel) and Models (versions, comparison, publish with the gate, roll back).
"""

from __future__ import annotations

import json
from datetime import datetime, time
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from sqlalchemy import select

from server.auth import token_is_valid
from server.console_auth import csrf_token, log_in, login_required
from server.database import db
from server.jobs import SETTINGS, cancel, enqueue, training_progress, validate_settings
from server.model_store import (
    PublishRefused,
    publish,
    published_version,
    reports_dir,
    rollback,
    version_summary,
)
from server.models import ModelVersion, PublishEvent, Submission, TrainingJob
from server.review import (
    SUBMISSION_ORDERS,
    ReviewError,
    counts_by_label,
    current_labels,
    review,
)
from server.test_images import test_image_path
from training.errors import BinbotError

console = Blueprint("console", __name__, url_prefix="/admin", template_folder="templates")
PAGE_SIZE = 60


@console.app_context_processor
def template_helpers() -> dict[str, Any]:
    return {"csrf_token": csrf_token}


@console.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        if token_is_valid(request.form.get("token", "").strip()):
            log_in()
            target = request.args.get("next", "")
            # Only paths on this site: an attacker's link must not bounce admins elsewhere.
            if not target.startswith("/admin") or target.startswith("//"):
                target = url_for("console.submissions")
            return redirect(target)
        error = "That admin token is not valid."
    return render_template("console/login.html", error=error), 403 if error else 200


@console.post("/logout")
@login_required
def logout():
    session.clear()
    return redirect(url_for("console.login"))


@console.get("/")
@login_required
def home():
    return redirect(url_for("console.submissions"))


# Submissions ---------------------------------------------------------------------------


def _date(text: str | None, end_of_day: bool = False) -> datetime | None:
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        abort(400, description=f"dates are YYYY-MM-DD, got {text!r}")
    return datetime.combine(day.date(), time.max if end_of_day else time.min)


@console.get("/submissions")
@login_required
def submissions():
    filters = {
        k: request.args.get(k, "") for k in ("status", "label", "predicted", "since", "until")
    }
    order = request.args.get("order", "newest")
    if order not in SUBMISSION_ORDERS:
        abort(400, description=f"order must be one of {sorted(SUBMISSION_ORDERS)}")
    query = select(Submission)
    if filters["status"]:
        query = query.where(Submission.status == filters["status"])
    if filters["label"]:
        query = query.where(Submission.label == filters["label"])
    if filters["predicted"]:
        query = query.where(Submission.predicted_label == filters["predicted"])
    if since := _date(filters["since"]):
        query = query.where(Submission.created_at >= since)
    if until := _date(filters["until"], end_of_day=True):
        query = query.where(Submission.created_at <= until)
    page_text = request.args.get("page", "1") or "1"
    if not page_text.isdigit():
        abort(400, description=f"page must be a whole number, got {page_text!r}")
    page = max(int(page_text), 1)
    rows = db.session.scalars(
        query.order_by(SUBMISSION_ORDERS[order]).limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)
    ).all()
    return render_template(
        "console/submissions.html",
        rows=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        page=page,
        filters=filters,
        order=order,
        labels=current_labels(),
        accepted=counts_by_label("accepted"),
        pending=counts_by_label("pending"),
    )


@console.post("/submissions/review")
@login_required
def review_submissions():
    ids = [int(i) for i in request.form.getlist("ids") if i.isdigit()]
    action = request.form.get("action")
    try:
        rows = review(ids, action, request.form.get("label"))
    except ReviewError as exc:
        flash(str(exc), "error")
    else:
        flash(f"{action}: {len(rows)} submission{'s' * (len(rows) != 1)} updated.", "ok")
    return redirect(request.form.get("back") or url_for("console.submissions"))


@console.get("/submissions/<int:submission_id>/photo")
@login_required
def submission_photo(submission_id: int):
    row = db.session.get(Submission, submission_id)
    if row is None:
        abort(404, description=f"no submission {submission_id}")
    return send_file(Path(current_app.config["BINBOT_DATA_DIR"]) / row.image_path, max_age=3600)


# Training ------------------------------------------------------------------------------


@console.get("/training")
@login_required
def training():
    jobs = db.session.scalars(select(TrainingJob).order_by(TrainingJob.id.desc()).limit(50)).all()
    return render_template(
        "console/training.html",
        jobs=jobs,
        settings=SETTINGS,
        accepted=counts_by_label("accepted"),
    )


@console.post("/training")
@login_required
def start_training():
    raw = {k: v for k in SETTINGS if (v := request.form.get(k, "").strip())}
    try:
        settings = validate_settings({k: int(v) for k, v in raw.items()})
    except ValueError as exc:
        flash(f"Not started: {exc}", "error")
        return redirect(url_for("console.training"))
    job = enqueue(settings)
    return redirect(url_for("console.job", job_id=job.id))


def _job_or_404(job_id: int) -> TrainingJob:
    job = db.session.get(TrainingJob, job_id)
    if job is None:
        abort(404, description=f"no training job {job_id}")
    return job


@console.get("/training/<int:job_id>")
@login_required
def job(job_id: int):
    row = _job_or_404(job_id)
    return render_template(
        "console/job.html", job=row.as_dict(), progress=training_progress(row.log)
    )


@console.get("/training/<int:job_id>.json")
@login_required
def job_json(job_id: int):
    row = _job_or_404(job_id)
    return jsonify({"job": row.as_dict(), "training": training_progress(row.log)})


@console.post("/training/<int:job_id>/cancel")
@login_required
def cancel_job(job_id: int):
    try:
        row = cancel(job_id)
    except (LookupError, ValueError) as exc:
        flash(str(exc), "error")
    else:
        flash(f"Job {job_id}: {row.status}.", "ok")
    return redirect(url_for("console.job", job_id=job_id))


# Models --------------------------------------------------------------------------------


def _metrics(version: str) -> dict[str, Any]:
    path = reports_dir(version) / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _version_rows() -> list[dict[str, Any]]:
    """Each version with what the Models page shows: date, data, size, accuracy, recall."""
    corrections: dict[str, dict] = {}
    for row in db.session.scalars(select(TrainingJob).where(TrainingJob.status == "succeeded")):
        result = row.as_dict().get("result") or {}
        if result.get("candidate_version"):
            corrections[result["candidate_version"]] = result.get("corrections_used") or {}
    out = []
    for row in db.session.scalars(select(ModelVersion).order_by(ModelVersion.id.desc())):
        counts = _metrics(row.version).get("data_counts") or {}
        summary = version_summary(row)
        out.append(
            {
                **summary,
                "per_class_recall": summary["per_class_recall"] or {},
                "train_images": sum(counts.get("train", {}).values()) if counts else None,
                "corrections": sum(corrections.get(row.version, {}).values()),
            }
        )
    return out


@console.get("/models")
@login_required
def models():
    history = db.session.scalars(select(PublishEvent).order_by(PublishEvent.id.desc())).all()
    return render_template(
        "console/models.html",
        versions=_version_rows(),
        live=published_version(),
        history=history,
    )


@console.post("/models/<version>/publish")
@login_required
def publish_model(version: str):
    force = request.form.get("force") == "on"
    try:
        publish(version, force=force, reason=request.form.get("reason") or None)
    except PublishRefused as exc:
        flash(f"Refused: {exc}", "error")
    except (LookupError, BinbotError) as exc:
        flash(str(exc), "error")
    else:
        flash(f"{version} is live; phones get it at their next check.", "ok")
    return redirect(url_for("console.models"))


@console.post("/models/rollback")
@login_required
def rollback_model():
    try:
        row = rollback()
    except BinbotError as exc:
        flash(str(exc), "error")
    else:
        flash(f"Rolled back: {row.version} is live again.", "ok")
    return redirect(url_for("console.models"))


@console.get("/models/<version>/report/<name>")
@login_required
def model_report(version: str, name: str):
    if name not in ("confusion_matrix.png", "misclassified.png"):
        abort(404, description=f"no report file {name!r}")
    path = reports_dir(version) / name
    if not path.is_file():
        abort(404, description=f"no {name} for {version}")
    return send_file(path, max_age=3600)


def changed_predictions(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]] | None:
    """Test images (same content) whose predicted class differs between two evaluations."""
    if not a.get("predictions") or not b.get("predictions"):
        return None
    by_hash = {p["sha256"]: p for p in b["predictions"]}
    changed = []
    for p in a["predictions"]:
        other = by_hash.get(p["sha256"])
        if other and other["predicted"] != p["predicted"]:
            changed.append(
                {"sha256": p["sha256"], "path": p["path"], "true": p["true"],
                 "a": p["predicted"], "a_confidence": p["confidence"],
                 "b": other["predicted"], "b_confidence": other["confidence"]}
            )  # fmt: skip
    return changed


@console.get("/models/compare")
@login_required
def compare():
    versions = {v["version"]: v for v in _version_rows()}
    a, b = request.args.get("a"), request.args.get("b")
    if a not in versions or b not in versions:
        abort(404, description="choose two known versions to compare")
    metrics_a, metrics_b = _metrics(a), _metrics(b)
    same_test_set = versions[a]["test_set_fingerprint"] == versions[b]["test_set_fingerprint"]
    changed = changed_predictions(metrics_a, metrics_b) if same_test_set else None
    labels = list(versions[a]["per_class_recall"] or versions[b]["per_class_recall"])
    return render_template(
        "console/compare.html",
        a=versions[a],
        b=versions[b],
        labels=labels,
        same_test_set=same_test_set,
        changed=changed,
        fixed=sum(1 for c in changed or [] if c["b"] == c["true"]),
        broken=sum(1 for c in changed or [] if c["a"] == c["true"]),
    )


@console.get("/test-images/<sha256>")
@login_required
def test_image(sha256: str):
    path = test_image_path(sha256)
    if path is None:
        abort(404, description="no such test image in the base dataset")
    return send_file(path, max_age=3600)
