"""Reviewing submissions: which to show (filters, order, pages), accept / reject / relabel,
and what review means for the next retraining (counts per label).

The admin API and the console both call these, so a filter or a rule exists once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any

from sqlalchemy import Select, func, select

from binbot.errors import shortened
from server.errors import BadRequest, NotFound, Unprocessable
from server.extensions import db
from server.public.names import by_key, name_key
from server.registry.bundles import live_version_change
from server.tables import Submission
from server.untrusted import is_row_id

STATUSES = ("pending", "accepted", "rejected")
ACTIONS = ("accept", "reject", "relabel")
ORDERS = {
    "newest": Submission.id.desc(),
    "oldest": Submission.id.asc(),
    "low_confidence": Submission.confidence.asc().nulls_last(),
}
MAX_PAGE_SIZE = 500
# One review covers at most this many submissions (two console pages): a bound on the query,
# which databases cap anyway (PostgreSQL's protocol at 65,535 parameters; this machine's SQLite
# failed at a million), and on the answer's size.
MAX_REVIEW_IDS = 2 * MAX_PAGE_SIZE


@dataclass(frozen=True)
class SubmissionFilter:
    """Which submissions to list, and in what order; every field is optional."""

    status: str = ""
    label: str = ""
    predicted_label: str = ""
    since: str = ""
    until: str = ""
    order: str = "newest"

    @classmethod
    def from_args(cls, args: Mapping[str, str]) -> SubmissionFilter:
        """From query parameters; BadRequest naming the parameter that is wrong."""
        values = {name: args.get(name) or "" for name in cls.__dataclass_fields__}
        chosen = cls(**{**values, "order": values["order"] or "newest"})
        if chosen.status and chosen.status not in STATUSES:
            raise BadRequest(f"status must be one of {list(STATUSES)}")
        if chosen.order not in ORDERS:
            raise BadRequest(f"order must be one of {sorted(ORDERS)}")
        chosen.query()  # checks the dates
        return chosen

    def as_args(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def query(self) -> Select:
        query = select(Submission)
        for column, value in (
            (Submission.status, self.status),
            (Submission.label, self.label),
            (Submission.predicted_label, self.predicted_label),
        ):
            if value:
                query = query.where(column == value)
        if self.since:
            query = query.where(Submission.created_at >= _day(self.since, time.min))
        if self.until:
            query = query.where(Submission.created_at <= _day(self.until, time.max))
        return query.order_by(ORDERS[self.order])

    def rows(self, limit: int, offset: int) -> list[Submission]:
        return list(db.session.scalars(self.query().limit(limit).offset(offset)))


def _day(text: str, at: time) -> datetime:
    """A filter's day as a UTC moment, as the console shows times: a bare one would be read
    in PostgreSQL's connection zone, which need not be UTC."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise BadRequest(f"dates are YYYY-MM-DD, got {shortened(text)!r}") from None
    return datetime.combine(day.date(), at, tzinfo=UTC)


def review(ids: Any, action: Any, label: Any = None) -> list[Submission]:
    """Apply ``action`` to every submission in ``ids``, all or nothing."""
    if not isinstance(ids, list) or not ids or not all(map(is_row_id, ids)):
        raise BadRequest("ids must be a non-empty list of submission ids")
    ids = sorted(set(ids))
    if len(ids) > MAX_REVIEW_IDS:
        raise BadRequest(f"review at most {MAX_REVIEW_IDS} submissions at a time, got {len(ids)}")
    if action not in ACTIONS:
        raise BadRequest("action must be accept, reject or relabel")
    rows = db.session.scalars(select(Submission).where(Submission.id.in_(ids))).all()
    found = {r.id for r in rows}
    missing = [i for i in ids if i not in found]  # ids is sorted and without repeats already
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise NotFound(f"no submissions with ids {shown} ({len(missing)} of {len(ids)})")
    with live_version_change():  # the kinds checked here stay kinds until this commits
        if action == "relabel":
            label = current_label(label)
        elif action == "accept":
            require_learnable(rows)
        for row in rows:
            if action == "relabel":
                row.label = label
            else:
                row.status = "accepted" if action == "accept" else "rejected"
        db.session.commit()
    return list(rows)


def require_learnable(rows: list[Submission]) -> None:
    """Accepting adds photos to training under their label, so each needs a current kind. A
    photo sent as "something else" has only a name: accepted as it is, it would leave its
    group in the proposals and never be learned. Refused, all of them, with the way out."""
    kinds = set(current_labels())
    nameless = [r for r in rows if r.label is None]
    if nameless:
        names = sorted({r.proposed_name or "" for r in nameless})
        raise Unprocessable(
            f"{len(nameless)} of the photos were sent as something else "
            f"({', '.join(map(repr, names[:5]))}{' ...' if len(names) > 5 else ''}), not as a "
            "kind: map their name to a kind or make it a new kind under proposals, or relabel "
            "them first"
        )
    unknown = sorted({r.label for r in rows if r.label not in kinds})
    if unknown:
        raise Unprocessable(
            f"photos labelled {', '.join(map(repr, unknown[:5]))} cannot be accepted: "
            "no such kind any more; relabel them first"
        )


def find_submission(submission_id: int) -> Submission:
    row = db.session.get(Submission, submission_id)
    if row is None:
        raise NotFound(f"no submission {submission_id}")
    return row


def current_labels() -> list[str]:
    """The kinds a photo may be labelled with: the live model's, and new ones it will learn."""
    from server.registry.kinds import kind_names

    return kind_names()


def current_label(label: Any) -> str:
    """The kind ``label`` names, which the live model or an accepted kind knows: photos may
    only be filed under such a kind. Names are compared by key, as everywhere else ("mouse"
    is Mouse, as a phone's correction is), and the photos get the kind's own name."""
    labels = current_labels()
    known = by_key(labels)
    if not isinstance(label, str) or name_key(label) not in known:
        raise Unprocessable(f"label must be one of {labels}")
    return known[name_key(label)]


def counts_by_label(status: str) -> dict[str, int]:
    """Submissions with ``status`` per label (accepted ones are what retraining adds)."""
    rows = db.session.execute(
        select(Submission.label, func.count(Submission.id))
        .where(Submission.status == status, Submission.label.is_not(None))
        .group_by(Submission.label)
    ).all()
    counts = Counter(dict(rows))
    return {label: counts.get(label, 0) for label in sorted(set(current_labels()) | set(counts))}


@dataclass(frozen=True)
class Proposal:
    """Photos sent as "something else" under one name (compared case- and space-blind)."""

    key: str
    name: str  # the most common spelling
    count: int
    ids: list[int]


def proposals(limit: int = 50) -> list[Proposal]:
    """Pending proposed names, most proposed first, with their photos' ids."""
    rows = db.session.execute(
        select(Submission.proposed_key, Submission.proposed_name, Submission.id)
        .where(
            Submission.status == "pending",
            Submission.proposed_key.is_not(None),
            Submission.label.is_(None),  # relabelled: an admin filed it under a kind already
        )
        .order_by(Submission.id)
    ).all()
    groups: dict[str, list] = {}
    for key, name, row_id in rows:
        groups.setdefault(key, []).append((name, row_id))
    out = [
        Proposal(key, Counter(n for n, _ in members).most_common(1)[0][0], len(members),
                 [row_id for _, row_id in members])
        for key, members in groups.items()
    ]  # fmt: skip
    return sorted(out, key=lambda p: (-p.count, p.key))[:limit]


def settle_proposal(key: str, action: str, label: str | None = None) -> int:
    """Map a proposed name's pending photos to a kind (they are then accepted), or reject
    them; returns how many photos changed."""
    if action not in ("map", "reject"):
        raise BadRequest("action must be map or reject")  # whether or not the name has photos
    # The group is read under the lock: a second press of Map or Reject (or a second admin)
    # finds it settled, instead of settling the same photos again, or filing them under
    # another kind over the first one's choice.
    with live_version_change():  # the kind mapped to stays a kind until this commits
        rows = db.session.scalars(
            select(Submission).where(
                Submission.proposed_key == key,
                Submission.status == "pending",
                Submission.label.is_(None),
            )
        ).all()
        if not rows:
            raise NotFound(f"no pending photos proposed as {key[:80]!r}")
        if action == "map":
            label = current_label(label)
            for row in rows:
                row.label, row.status = label, "accepted"
        else:
            for row in rows:
                row.status = "rejected"
        db.session.commit()
    return len(rows)
