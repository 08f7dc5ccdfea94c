"""Reviewing submissions (accept, reject, relabel) and what review means for training.

Shared by the admin API and the admin console, so both enforce the same rules.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import func, select

from server.database import db
from server.model_store import published_version
from server.models import Submission

ACTIONS = ("accept", "reject", "relabel")
# How a submission list can be sorted (admin API and console).
SUBMISSION_ORDERS = {
    "newest": Submission.id.desc(),
    "oldest": Submission.id.asc(),
    "low_confidence": Submission.confidence.asc().nulls_last(),
}


class ReviewError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def review(ids: Any, action: Any, label: Any = None) -> list[Submission]:
    """Apply ``action`` to every submission in ``ids``, all or nothing."""
    if not isinstance(ids, list) or not ids or not all(isinstance(i, int) for i in ids):
        raise ReviewError("ids must be a non-empty list of submission ids", 400)
    if action not in ACTIONS:
        raise ReviewError("action must be accept, reject or relabel", 400)
    rows = db.session.scalars(select(Submission).where(Submission.id.in_(ids))).all()
    missing = sorted(set(ids) - {r.id for r in rows})
    if missing:
        raise ReviewError(f"no submissions with ids {missing}", 404)
    if action == "relabel":
        labels = current_labels()
        if label not in labels:
            raise ReviewError(f"label must be one of {labels}", 422)
    for row in rows:
        if action == "relabel":
            row.label = label
        else:
            row.status = "accepted" if action == "accept" else "rejected"
    db.session.commit()
    return rows


def current_labels() -> list[str]:
    current = published_version()
    return current.manifest["labels"] if current else []


def counts_by_label(status: str) -> dict[str, int]:
    """Submissions with ``status`` per label (accepted ones are what retraining adds)."""
    rows = db.session.execute(
        select(Submission.label, func.count(Submission.id))
        .where(Submission.status == status)
        .group_by(Submission.label)
    ).all()
    counts = Counter(dict(rows))
    return {label: counts.get(label, 0) for label in sorted(set(current_labels()) | set(counts))}
