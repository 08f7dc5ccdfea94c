"""The admin console: server-rendered pages over the same services as the admin API.

Submissions (gallery, filters, bulk review, what training would add), Training (start, live
progress, log, cancel) and Models (versions, comparison, publish with the gate, roll back).
A refused change comes back as a message on the page it was asked from; a page that cannot
be shown is an HTML error page (``server.errors``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)

from server.admin.sessions import (
    csrf_token,
    local_target,
    log_in,
    log_out,
    logged_in,
    login_required,
    session_token_id,
)
from server.admin.submissions import (
    STATUSES,
    SubmissionFilter,
    counts_by_label,
    current_labels,
    find_submission,
    proposals,
    review,
    settle_proposal,
)
from server.admin.tokens import checked_token, list_tokens, revoke_keeping_one
from server.admin.versions import compare as compare_versions
from server.admin.versions import version_rows
from server.errors import ServiceError
from server.jobs.base_dataset import base_dataset_problem
from server.jobs.queue import (
    cancel,
    enqueue,
    job_settings,
    job_status,
    recent_crashes,
    recent_jobs,
)
from server.jobs.queue import validate_settings as check_job_settings
from server.limits import configured
from server.registry.bundles import (
    REPORT_FILES,
    publish,
    publish_history,
    published_version,
    report_file,
    rollback,
    rollback_target,
)
from server.registry.dataset_images import base_test_image
from server.registry.kinds import (
    MIN_NEW_KIND_PHOTOS,
    StaleAdvice,
    advice_revisions,
    all_kinds,
    create_kind,
    delete_kind,
    edit_advice,
    find_kind,
    guidance_for,
    live_keys,
)
from server.registry.photos import photo_path
from server.tables import as_utc, utc_text, utcnow
from server.untrusted import parse_row_id, request_key, whole_number

console = Blueprint("console", __name__, url_prefix="/admin")
PAGE_SIZE = 60
# This many worker crashes within this many minutes is a crash loop, shown as such.
CRASH_LOOP, CRASH_LOOP_MINUTES = 3, 10


@console.app_template_filter("utc")
def utc_time(moment: datetime | None, seconds: bool = False) -> str:
    """A stored time as the console shows it, saying it is UTC (the server's times were shown
    bare, beside the Models page's "UTC", and read as local time)."""
    return utc_text(moment, seconds) if moment is not None else ""


@console.app_context_processor
def template_helpers() -> dict[str, Any]:
    return {"csrf_token": csrf_token, "console_logged_in": logged_in}


@console.route("/login", methods=["GET", "POST"])
def login():
    target = local_target(request.args.get("next"), url_for("console.submissions"))
    error = None
    if request.method == "POST":
        token = request.form.get("token", "").strip()
        if (row := checked_token(token, configured("failed console logins"))) is not None:
            log_in(row)
            return redirect(target)
        error = "That admin token is not valid."
    return render_template("console/login.html", error=error), 403 if error else 200


@console.post("/logout")
@login_required
def logout():
    log_out()
    return redirect(url_for("console.login"))


@console.after_request
def never_cached(response):
    """Console pages show who sent what: no cache keeps them (photos: the browser's own only)."""
    if not response.cache_control.private:
        response.cache_control.no_store = True
    return response


@console.get("/")
@login_required
def home():
    return redirect(url_for("console.submissions"))


def attempt(action: Callable[[], Any], describe: Callable[[Any], str]) -> None:
    """Run a change the admin asked for; say what happened, or why it was refused."""
    try:
        outcome = action()
    except ServiceError as exc:
        flash(f"Refused: {exc}", "error")
    else:
        flash(describe(outcome), "ok")


# Submissions ---------------------------------------------------------------------------


@console.get("/submissions")
@login_required
def submissions():
    chosen = SubmissionFilter.from_args(request.args)
    page = whole_number(request.args, "page", 1, 1)
    rows = chosen.rows(PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
    return render_template(
        "console/submissions.html",
        rows=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        page=page,
        filters=chosen.as_args(),
        statuses=STATUSES,
        labels=current_labels(),
        accepted=counts_by_label("accepted"),
        pending=counts_by_label("pending"),
        proposals=proposals(),
    )


@console.post("/proposals/settle")
@login_required
def settle():
    key, action = request.form.get("key", ""), request.form.get("action", "")
    attempt(
        lambda: settle_proposal(key, action, request.form.get("label")),
        lambda count: f"{action}: {count} photo{'s' * (count != 1)} proposed as {key!r}.",
    )
    return redirect(url_for("console.submissions"))


@console.post("/submissions/review")
@login_required
def review_submissions():
    ids = [parse_row_id(i) for i in request.form.getlist("ids")]
    action = request.form.get("action")
    attempt(
        lambda: len(review(ids, action, request.form.get("label"))),
        lambda count: f"{action}: {count} submission{'s' * (count != 1)} updated.",
    )
    return redirect(local_target(request.form.get("back"), url_for("console.submissions")))


@console.get("/submissions/<id:submission_id>/photo")
@login_required
def submission_photo(submission_id: int):
    response = send_file(photo_path(find_submission(submission_id).image_path), max_age=3600)
    response.cache_control.public = False
    response.cache_control.private = True  # a person's photo: no shared cache keeps it
    return response


# Training ------------------------------------------------------------------------------


@console.get("/training")
@login_required
def training():
    from server.jobs.retrain import WARM_SCHEDULE

    crashes = recent_crashes(timedelta(hours=24))
    loop_since = utcnow() - timedelta(minutes=CRASH_LOOP_MINUTES)
    return render_template(
        "console/training.html",
        crashes=crashes,
        recent=(recent := sum(as_utc(c.at) >= loop_since for c in crashes)),
        crash_loop=recent >= CRASH_LOOP,
        loop_minutes=CRASH_LOOP_MINUTES,
        jobs=recent_jobs(50),
        settings=job_settings(),
        warm=WARM_SCHEDULE,
        int_type=int,
        bool_type=bool,
        accepted=counts_by_label("accepted"),
        base_problem=base_dataset_problem(),
        request_key=secrets.token_urlsafe(16),
    )


@console.post("/training")
@login_required
def start_training():
    try:
        settings = {s.name: s.parse(text) for s in job_settings()
                    if (text := request.form.get(s.name, "").strip())}  # fmt: skip
        key = request_key(request.form.get("request_key") or None)
        job, new = enqueue(check_job_settings(settings), key)
    except (ValueError, ServiceError) as exc:
        flash(f"Not started: {exc}", "error")
        return redirect(url_for("console.training"))
    if not new:  # the same form sent again (a double click): one retraining
        flash(f"This retraining was started already: job {job.id}.", "ok")
    return redirect(url_for("console.job", job_id=job.id))


@console.get("/training/<id:job_id>")
@login_required
def job(job_id: int):
    status = job_status(job_id)
    chosen = status["job"]["settings"] or {}
    return render_template(
        "console/job.html", job=status["job"], progress=status["training"],
        chosen=[f"{s.label} {s.shown(chosen[s.name])}" for s in job_settings() if s.name in chosen],
    )  # fmt: skip


@console.get("/training/<id:job_id>.json")
@login_required
def job_json(job_id: int):
    return jsonify(job_status(job_id))


@console.post("/training/<id:job_id>/cancel")
@login_required
def cancel_job(job_id: int):
    attempt(lambda: cancel(job_id).status, lambda status: f"Job {job_id}: {status}.")
    return redirect(url_for("console.job", job_id=job_id))


# Kinds and their advice ----------------------------------------------------------------


@console.get("/kinds")
@login_required
def kinds():
    return _kinds_page()


@dataclass(frozen=True)
class UnsavedForm:
    """A refused form, shown again with what the admin typed instead of an empty one.
    ``kind``: the kind whose advice it edits, or None for the new-kind form (with ``name``
    and ``proposal``); ``started_from``: the revision an advice edit keeps (None: the current
    one, once the admin has been told that someone else saved since)."""

    fields: dict[str, Any]
    kind: str | None = None
    started_from: int | None = None
    name: str = ""
    proposal: str = ""


def _kinds_page(unsaved: UnsavedForm | None = None) -> str:
    """The kinds with their advice forms, and the new-kind form; ``unsaved`` fills one."""
    revisions = advice_revisions()
    edited = unsaved.kind if unsaved else None
    if edited is not None and unsaved.started_from is not None:
        revisions[edited] = unsaved.started_from
    new_kind = unsaved if unsaved and edited is None else None
    return render_template(
        "console/kinds.html",
        kinds=[
            (k, unsaved.fields if k.name == edited else guidance_for(k.name)) for k in all_kinds()
        ],
        revisions=revisions,
        unsaved=edited,
        live_keys=live_keys(),
        proposals=proposals(),
        proposal=new_kind.proposal if new_kind else request.args.get("proposal", ""),
        new_kind=new_kind,
        min_photos=MIN_NEW_KIND_PHOTOS,
    )


def _advice_form() -> dict[str, str]:
    return {k: request.form.get(k, "") for k in ("category", "bin", "steps", "hazards", "link")}


def _as_fields(form: dict[str, str]) -> dict[str, Any]:
    """The advice form's text as the fields the page shows (steps and hazards as lines)."""
    return {**form, **{k: form[k].splitlines() for k in ("steps", "hazards")}}


@console.post("/kinds/<name>/advice")
@login_required
def save_advice(name: str):
    based_on = parse_row_id(request.form.get("revision", ""))
    form = _advice_form()
    try:
        edit_advice(name, form, based_on=based_on)
    except ServiceError as exc:
        # Shown again with the admin's text (a refused edit must not be lost to a redirect).
        flash(f"Refused: {exc}", "error")
        if isinstance(exc, StaleAdvice):  # a form has no If-Match: a conflict, not a 412
            return _kinds_page(UnsavedForm(_as_fields(form), kind=name)), 409
        return _kinds_page(UnsavedForm(_as_fields(form), kind=name, started_from=based_on)), (
            exc.status
        )
    name = find_kind(name).name  # the kind's own name, however the address spells it
    flash(f"Advice for {name} saved; phones get it at their next check.", "ok")
    return redirect(url_for("console.kinds") + f"#kind-{name}")


@console.post("/kinds")
@login_required
def add_kind():
    name, proposal = request.form.get("name", ""), request.form.get("proposal", "")
    form = _advice_form()
    try:
        created = create_kind(name, form, proposal)
    except ServiceError as exc:
        flash(f"Refused: {exc}", "error")  # the form comes back filled, not emptied
        return _kinds_page(UnsavedForm(_as_fields(form), name=name, proposal=proposal)), (
            exc.status
        )
    flash(f"{created.name} is a new kind; the next retraining learns it.", "ok")
    return redirect(url_for("console.kinds"))


@console.post("/kinds/<name>/delete")
@login_required
def remove_kind(name: str):
    attempt(
        lambda: delete_kind(name),
        lambda done: (
            f"{done[0]} deleted; {done[1]} photo{'s' * (done[1] != 1)} went back to the names "
            "people gave (Submissions page), to map to another kind or reject."
        ),
    )
    return redirect(url_for("console.kinds"))


# Admin tokens ---------------------------------------------------------------------------


@console.get("/tokens")
@login_required
def tokens():
    return render_template("console/tokens.html", tokens=list_tokens(), mine=session_token_id())


@console.post("/tokens/<id:token_id>/revoke")
@login_required
def revoke_admin_token(token_id: int):
    """Revoke a token (a lost laptop's); its console sessions end, this one too if it is its."""
    attempt(
        lambda: revoke_keeping_one(token_id),
        lambda named: f"Revoked {named}; every console session opened with it has ended.",
    )
    if not logged_in():  # this session's own token: the session went with it
        return redirect(url_for("console.login"))
    return redirect(url_for("console.tokens"))


# Models --------------------------------------------------------------------------------


@console.get("/models")
@login_required
def models():
    return render_template(
        "console/models.html",
        versions=version_rows(),
        live=published_version(),
        rollback_to=rollback_target(),
        history=publish_history(newest_first=True),
    )


@console.post("/models/<version>/publish")
@login_required
def publish_model(version: str):
    force = request.form.get("force") == "on"
    attempt(
        lambda: publish(version, force=force, reason=request.form.get("reason") or None),
        lambda _: f"{version} is live; phones get it at their next check.",
    )
    return redirect(url_for("console.models"))


@console.post("/models/rollback")
@login_required
def rollback_model():
    seen_live = request.form.get("from") or None  # what the page showed: a double click is one
    attempt(lambda: rollback(seen_live).version, lambda live: f"Rolled back: {live} is live again.")
    return redirect(url_for("console.models"))


@console.get("/models/<version>/report/<name>")
@login_required
def model_report(version: str, name: str):
    return send_file(report_file(version, name), mimetype=REPORT_FILES[name], max_age=3600)


@console.get("/models/compare")
@login_required
def compare():
    return render_template(
        "console/compare.html", **compare_versions(request.args.get("a"), request.args.get("b"))
    )


@console.get("/test-images/<sha256>")
@login_required
def test_image(sha256: str):
    return send_file(base_test_image(sha256), max_age=3600)
