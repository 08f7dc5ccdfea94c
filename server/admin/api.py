"""The admin JSON API: review submissions, see model versions, publish and roll back, retrain.

A thin face over the service layer: it reads the request, calls the service, and answers
JSON; errors are raised by the services and answered by ``server.errors``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from flask import Blueprint, g, jsonify, request, send_file

from binbot.errors import shortened
from server.admin.submissions import (
    MAX_PAGE_SIZE,
    SubmissionFilter,
    proposals,
    review,
    settle_proposal,
)
from server.admin.tokens import admin_required, list_tokens, revoke_keeping_one
from server.admin.versions import version_rows
from server.errors import BadRequest
from server.jobs.queue import cancel, enqueue, job_status, recent_jobs, validate_settings
from server.registry.bundles import (
    REPORT_FILES,
    publish,
    publish_history,
    report_file,
    rollback,
    version_summary,
)
from server.registry.kinds import (
    ADVICE_FIELDS,
    advice_revisions,
    advice_version,
    all_kinds,
    create_kind,
    delete_kind,
    edit_advice,
    guidance_for,
)
from server.tables import iso_utc
from server.untrusted import (
    json_object,
    only_fields,
    parse_row_id,
    request_key,
    text_field,
    whole_number,
)

admin_api = Blueprint("admin", __name__, url_prefix="/api/admin")


@admin_api.before_request
@admin_required
def authenticate() -> None:
    """Every admin endpoint needs the bearer token."""


@admin_api.get("/submissions")
def list_submissions():
    """Filter by status, label, predicted_label, since, until; order; limit and offset."""
    chosen = SubmissionFilter.from_args(request.args)
    limit = min(whole_number(request.args, "limit", 100, 1), MAX_PAGE_SIZE)
    offset = whole_number(request.args, "offset", 0, 0)
    rows = chosen.rows(limit, offset)
    return jsonify({"submissions": [r.as_dict() for r in rows], "limit": limit, "offset": offset})


@admin_api.post("/submissions/review")
def review_submissions():
    """Bulk accept, reject or relabel: {"ids": [...], "action": "...", "label": "..."}."""
    body: dict[str, Any] = json_object("ids", "action", "label")
    if body.get("label") is not None and body.get("action") in ("accept", "reject"):
        # A script that sends {"action": "accept", "label": "Mouse"} means "these are mice":
        # accepting them under the label they were sent with would teach the model the
        # opposite, silently. (The console's form, handled in console.py, sends its relabel
        # target only when relabelling: its script disables the field for the other actions.)
        raise BadRequest(
            f"{body['action']} keeps each photo's own label; to file them under "
            f"{shortened(str(body['label']), 60)!r}, relabel them first (action relabel)"
        )
    rows = review(body.get("ids"), body.get("action"), body.get("label"))
    return jsonify({"updated": len(rows), "submissions": [r.as_dict() for r in rows]})


@admin_api.get("/proposals")
def list_proposals():
    """Names people gave photos of things the model does not know, grouped, most first."""
    return jsonify({"proposals": [asdict(p) for p in proposals()]})


@admin_api.post("/proposals/settle")
def settle():
    """{"key": "phone charger", "action": "map" | "reject", "label": "..."}"""
    body: dict[str, Any] = json_object("key", "action", "label")
    key = body.get("key")
    if not isinstance(key, str) or not key:
        raise BadRequest("key must be a proposed name's key, as GET /api/admin/proposals gives it")
    count = settle_proposal(key, body.get("action"), body.get("label"))
    return jsonify({"updated": count})


@admin_api.get("/kinds")
def list_kinds():
    """Every kind with its current advice and that advice's revision."""
    revisions = advice_revisions()
    return jsonify({"kinds": [{"name": k.name, "guidance": guidance_for(k.name),
                               "revision": revisions.get(k.name)} for k in all_kinds()],
                    "advice_version": advice_version()})  # fmt: skip


def _if_match_revision() -> int | None:
    """The revision an edit started from, from ``If-Match: "<revision>"`` (None: not given)."""
    header = request.headers.get("If-Match")
    if header is None:
        return None
    revision = parse_row_id(header.strip().removeprefix("W/").strip('"'))
    if revision is None:
        raise BadRequest('If-Match must be an advice revision as an ETag, like "12"')
    return revision


@admin_api.put("/kinds/<name>/advice")
def put_advice(name: str):
    """A new revision of a kind's advice: {"category", "bin", "steps": [...], "hazards": [...],
    "link"}; phones get it at their next check, with no new model. With ``If-Match`` (the
    ``revision`` from GET /kinds, or the ETag of an earlier PUT), an edit started from advice
    that someone has changed since is refused with 412 instead of undoing their change."""
    saved = edit_advice(name, json_object(*ADVICE_FIELDS), based_on=_if_match_revision())
    response = jsonify({"name": name, "guidance": guidance_for(name), "revision": saved.id,
                        "advice_version": advice_version()})  # fmt: skip
    response.headers["ETag"] = f'"{saved.id}"'
    return response


@admin_api.post("/kinds")
def new_kind():
    """{"name", "advice": {...}, "from_proposal": "<proposal key>"}: a kind learned from photos
    people sent as "something else"; refused with the reason unless there are enough."""
    body: dict[str, Any] = json_object("name", "advice", "from_proposal")
    advice = body.get("advice") or {}
    if isinstance(advice, dict):  # anything else is refused, with its reason, by create_kind
        only_fields(advice, ADVICE_FIELDS, "advice field", "advice")
    kind = create_kind(text_field(body, "name"), advice, text_field(body, "from_proposal"))
    return jsonify({"name": kind.name, "guidance": guidance_for(kind.name)}), 201


@admin_api.delete("/kinds/<name>")
def remove_kind(name: str):
    """Delete a kind no live model uses; its photos go back to the proposals (how many is
    ``returned_to_proposals``)."""
    deleted, returned = delete_kind(name)
    return jsonify({"deleted": deleted, "returned_to_proposals": returned})


@admin_api.get("/tokens")
def list_admin_tokens():
    """Every admin token's number, note and dates; ``current`` is the one this request used."""
    return jsonify({"tokens": [t.as_dict() for t in list_tokens()],
                    "current": g.admin_token_id})  # fmt: skip


@admin_api.delete("/tokens/<id:token_id>")
def revoke_admin_token(token_id: int):
    """Revoke a token (a lost laptop's) and end its console sessions; never the last one."""
    revoke_keeping_one(token_id)
    return jsonify({"revoked": token_id})


@admin_api.get("/models")
def list_models():
    history = [
        {"version": e.version, "action": e.action, "forced": e.forced, "reason": e.reason,
         "at": iso_utc(e.at)}
        for e in publish_history()
    ]  # fmt: skip
    return jsonify({"models": version_rows(newest_first=False), "history": history})


@admin_api.post("/models/<version>/publish")
def publish_version(version: str):
    body = json_object("force", "reason")
    row = publish(version, force=body.get("force", False), reason=body.get("reason"))
    return jsonify({"published": version_summary(row)})


@admin_api.get("/models/<version>/report/<name>")
def model_report(version: str, name: str):
    """A version's evaluation report: report.md, metrics.json, confusion_matrix.png, ..."""
    return send_file(report_file(version, name), mimetype=REPORT_FILES[name])


@admin_api.post("/models/rollback")
def rollback_version():
    """Publish again the version live before the current one; with {"from": "<version>"},
    only while that version is live (a repeated request then changes nothing: 409)."""
    body: dict[str, Any] = json_object("from")
    from_version = body.get("from")
    if from_version is not None and not isinstance(from_version, str):
        raise BadRequest("from must be a model version")
    return jsonify({"published": version_summary(rollback(from_version))})


@admin_api.post("/jobs")
def start_job():
    """Queue a retraining: {"settings": {"head_epochs": 5, ...}} (all optional)."""
    body = json_object("settings")
    settings = validate_settings(body.get("settings"))
    job, new = enqueue(settings, request_key(request.headers.get("Idempotency-Key")))
    return jsonify({"job": job.as_dict(), "replayed": not new}), 202 if new else 200


@admin_api.get("/jobs")
def list_jobs():
    return jsonify({"jobs": [r.as_dict() for r in recent_jobs()]})


@admin_api.get("/jobs/<id:job_id>")
def job_detail(job_id: int):
    return jsonify(job_status(job_id))


@admin_api.post("/jobs/<id:job_id>/cancel")
def cancel_job(job_id: int):
    return jsonify({"job": cancel(job_id).as_dict()})
