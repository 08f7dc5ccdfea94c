"""The kinds of item BinBot knows or is learning, and their disposal advice.

Advice is data: every edit is a new revision (the history is kept), and the largest revision
id is the advice's version, which phones compare at each check to refresh their copy without a
new model. A model's labels always have kinds (publishing adds any that are missing, with the
general advice until an admin writes theirs). A new kind comes from the photos people sent as
"something else": it needs a name unlike every kind a model has learned (a seeded kind no model
knows yet is taken up), its advice, and enough photos to learn it from. A kind the live model
uses cannot be deleted; deleting another returns its photos to the proposals.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.exc import IntegrityError

from binbot.errors import shortened
from server.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from server.extensions import db
from server.public.names import clean_name, name_key
from server.registry.bundles import live_version_change, published_version
from server.tables import Advice, Kind, KindDeletion, ModelVersion, Submission, utc_text, utcnow
from training.dataset_layout import IGNORED_NAMES

NOTE = "Rules differ by place: check your municipality's guidance."
# What a kind says until an admin writes its own advice.
GENERAL = {
    "category": "Electronic waste",
    "bin": "E-waste collection point",
    "steps": [
        "Do not put it in household waste or recycling bins.",
        "Take it to an e-waste collection point or a retailer take-back scheme.",
    ],
    "hazards": [],
}
MIN_NEW_KIND_PHOTOS = 20
MAX_FIELD = 200
# What advice is made of; a JSON edit naming anything else is refused (server/admin/api.py).
ADVICE_FIELDS = ("category", "bin", "steps", "hazards", "link")
MAX_ITEMS = 10


def _current(kind: Kind) -> Advice | None:
    return db.session.scalars(
        select(Advice).where(Advice.kind_id == kind.id).order_by(Advice.id.desc()).limit(1)
    ).first()


def find_kind(name: str) -> Kind:
    """The kind ``name`` names, compared by key as everywhere ("battery" is Battery)."""
    kind = db.session.scalars(select(Kind).where(Kind.key == name_key(name))).first()
    if kind is None:
        raise NotFound(f"no kind {shortened(name, 60)!r}")
    return kind


def all_kinds() -> list[Kind]:
    return list(db.session.scalars(select(Kind).order_by(Kind.name)))


def kind_for(label: str) -> Kind | None:
    """The kind a model's label is: names are compared by key (case, spaces, NFKC), so a
    dataset's ``mouse`` folder is the kind ``Mouse``."""
    return db.session.scalars(select(Kind).where(Kind.key == name_key(label))).first()


def guidance_for(name: str) -> dict[str, Any]:
    """What a phone shows for ``name``: its advice, or the general e-waste advice."""
    kind = kind_for(name)
    current = _current(kind) if kind else None
    return {**(current.advice if current else {**GENERAL, "link": None}), "note": NOTE}


def advice_version() -> int:
    return db.session.scalar(select(func.max(Advice.id))) or 0


def ensure_kinds(labels: list[str]) -> None:
    """Every label of a model has a kind (with the general advice until someone edits it).
    A label whose key a kind has already is that kind (a model trained on lowercase folders
    gets the seeded advice of ``Mouse`` for ``mouse``), not a second kind the key forbids."""
    known = {k.key for k in all_kinds()}
    for label in labels:
        if name_key(label) not in known:
            known.add(name_key(label))
            kind = Kind(name=label, key=name_key(label))
            db.session.add(kind)
            db.session.flush()
            db.session.add(
                Advice(kind_id=kind.id, advice_json=json.dumps({**GENERAL, "link": None}))
            )
            _forget_deletion(kind.key)


def deleted_kinds_in(version: str, labels: list[str]) -> str | None:
    """Why publishing ``version`` (its ``labels``) would undo an admin's deletion, or None: a
    label that is no kind now, of a kind that was deleted. A model trained while the kind
    existed (or in a retraining that started before) still knows it, and publishing it brought
    the kind back with the general advice."""
    known = {k.key for k in all_kinds()}
    deleted = {row.key: row for row in db.session.scalars(select(KindDeletion))}
    keys = [name_key(label) for label in labels]
    back = [deleted[key] for key in keys if key in deleted and key not in known]
    if not back:
        return None
    named = ", ".join(f"{row.name!r} (deleted {utc_text(row.deleted_at)})" for row in back)
    them = "that kind" if len(back) == 1 else "those kinds"
    return (
        f"{version} knows {named}: publishing it would bring {them} back with the general "
        "advice; retrain without it, or make the kind again"
    )


def _forget_deletion(key: str) -> None:
    db.session.execute(delete(KindDeletion).where(KindDeletion.key == key))


def clean_advice(fields: dict[str, Any]) -> dict[str, Any]:
    """Advice from a form or JSON: category, bin, steps, hazards (lists) and a link."""
    if not isinstance(fields, dict):
        raise Unprocessable("advice is an object with category, bin, steps, hazards and link")

    def text(name: str, required: bool = True) -> str:
        raw = fields.get(name) or ""
        if not isinstance(raw, str):
            raise Unprocessable(f"the advice's {name} must be text")
        value = " ".join(raw.split())
        if required and not value:
            raise Unprocessable(f"advice needs a {name}")
        if len(value) > MAX_FIELD or not value.isprintable():
            raise Unprocessable(f"the advice's {name} is too long or has odd characters")
        return value

    def lines(name: str) -> list[str]:
        raw = fields.get(name) or []
        items = raw.splitlines() if isinstance(raw, str) else raw
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise Unprocessable(f"the advice's {name} must be text, or a list of texts")
        items = [" ".join(i.split()) for i in items if i.strip()]
        if len(items) > MAX_ITEMS or any(len(i) > MAX_FIELD or not i.isprintable() for i in items):
            raise Unprocessable(f"the advice's {name}: at most {MAX_ITEMS} lines of {MAX_FIELD}")
        return items

    link = text("link", required=False) or None
    if link and not re.fullmatch(r"https://[^\s<>\"']+", link):
        raise Unprocessable("the link must be an https:// address")
    steps = lines("steps")
    if not steps:
        raise Unprocessable("advice needs at least one step")
    return {"category": text("category"), "bin": text("bin"), "steps": steps,
            "hazards": lines("hazards"), "link": link}  # fmt: skip


class StaleAdvice(PreconditionFailed):
    """Someone saved the kind's advice after this edit was started from it."""


def advice_revisions() -> dict[str, int]:
    """Each kind's current advice revision (what an edit says it started from)."""
    newest = select(Advice.kind_id, func.max(Advice.id)).group_by(Advice.kind_id).subquery()
    rows = db.session.execute(
        select(Kind.name, newest.c[1]).join(newest, newest.c.kind_id == Kind.id)
    )
    return {name: revision for name, revision in rows}


def edit_advice(name: str, fields: dict[str, Any], based_on: int | None = None) -> Advice:
    """A new revision of a kind's advice; phones get it at their next check.

    ``based_on`` is the revision the editor started from: when another edit was saved since,
    nothing is saved (StaleAdvice), rather than undoing that edit unseen. Two saves racing from
    the same revision meet the unique ``replaces_id``: one of them is refused the same way.
    """
    kind = find_kind(name)
    cleaned = clean_advice(fields)
    current = _current(kind)
    now = current.id if current else None
    since = f"after revision {based_on} was opened" if based_on else "while this edit was saved"
    stale = StaleAdvice(
        f"the advice for {name} was changed by someone else {since}; nothing was saved. "
        "Look at the current advice, then save your edit again"
    )
    if based_on is not None and based_on != now:
        raise stale
    advice = Advice(kind_id=kind.id, advice_json=json.dumps(cleaned), replaces_id=now)
    db.session.add(advice)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise stale from None
    return advice


def check_kind_name(name: str) -> None:
    """A kind's name is also the folder its photos are trained from, and a part of the
    console's and the API's URLs: a slash would split it in two, and training skips hidden
    folders and the ones archivers leave, so such a kind would never be learned."""
    if "/" in name or "\\" in name:
        suggestion = name.replace("/", "-").replace("\\", "-")
        raise Unprocessable(
            "a kind's name cannot contain / or \\ (it names the folder training reads its "
            f"photos from): write {suggestion!r}, for instance"
        )
    if name.startswith(".") or name in IGNORED_NAMES:
        raise Unprocessable(
            f"a kind cannot be called {name!r}: training skips folders named so (a name may "
            f"not start with '.' or be one of {', '.join(sorted(IGNORED_NAMES))})"
        )


def create_kind(name: str, fields: dict[str, Any], proposal_key: str) -> Kind:
    """A new kind from the photos proposed under ``proposal_key``: all or nothing."""
    name, key = clean_name(name)
    check_kind_name(name)
    advice = clean_advice(fields)
    # Under the lock: a mapping of the same group, or a deletion, at the same moment waits.
    with live_version_change():
        existing = db.session.scalars(select(Kind).where(Kind.key == key)).first()
        if existing is not None and existing.key in learned_keys():
            raise Conflict(
                f"there is a kind {existing.name!r} already (names are compared without case)"
            )
        # A kind no model has learned yet is taken up under its own name, whatever case or
        # spacing this request spells it in: its photos must carry the name the kinds list
        # and training use ("Widget" photos under the kind "WIDGET" were a class of their own).
        name = existing.name if existing is not None else name
        photos = db.session.scalars(
            select(Submission).where(
                Submission.proposed_key == proposal_key,
                Submission.status != "rejected",
                # Waiting in the group, or this kind's already (a repeated request); never those
                # an admin filed under another kind (mapped or relabelled).
                or_(Submission.label.is_(None), Submission.label == name),
            )
        ).all()
        if len(photos) < MIN_NEW_KIND_PHOTOS:
            raise Unprocessable(
                f"a new kind needs at least {MIN_NEW_KIND_PHOTOS} photos to learn it from; "
                f"{len(photos)} were sent as {proposal_key!r}"
            )
        kind = existing or Kind(name=name, key=key)
        try:
            db.session.add(kind)
            db.session.flush()
            replaced = _current(kind) if existing else None
            db.session.add(
                Advice(
                    kind_id=kind.id,
                    advice_json=json.dumps(advice),
                    replaces_id=replaced.id if replaced else None,
                )
            )
            for photo in photos:
                photo.label, photo.status = name, "accepted"
            _forget_deletion(key)
            db.session.commit()
        except IntegrityError:  # the same kind, made by another request at the same moment
            db.session.rollback()
            raise Conflict(
                f"{name!r} was made a kind by another request just now; nothing more was changed"
            ) from None
    return kind


def learned_keys() -> set[str]:
    """The keys of the kinds some model version has learned (their names are taken)."""
    return {
        name_key(label)
        for row in db.session.scalars(select(ModelVersion))
        for label in row.manifest["labels"]
    }


def live_keys() -> set[str]:
    """The keys of the live model's labels: the kinds it uses, however its labels spell them."""
    return _label_keys(published_version())


def version_label_keys(version_name: str) -> set[str]:
    """The keys of a registered model version's labels (none for a version never registered)."""
    found = db.session.scalars(select(ModelVersion).where(ModelVersion.version == version_name))
    return _label_keys(found.first())


def _label_keys(version: ModelVersion | None) -> set[str]:
    return {name_key(label) for label in version.manifest["labels"]} if version else set()


def delete_kind(name: str) -> tuple[str, int]:
    """Delete a kind the live model does not use; returns its name and how many photos went
    back to the proposals. Its photos are kept, but not as accepted photos of a name that no
    longer exists (retraining would learn the deleted kind, and publishing bring it back with
    the general advice): each goes back to the proposals, pending, under the name it was sent
    as (or the kind's), for an admin to map to another kind, make a kind again, or reject."""
    with live_version_change() as live:  # no model that knows it is published meanwhile
        kind = find_kind(name)  # here: a deletion just before this one found it too
        if kind.key in _label_keys(live):
            raise Conflict(
                f"the live model {live.version} knows {kind.name!r}: it cannot be deleted"
            )
        photos = db.session.scalars(
            select(Submission).where(Submission.label == kind.name, Submission.status != "rejected")
        ).all()
        for photo in photos:
            photo.label, photo.status = None, "pending"
            if photo.proposed_key is None:  # a correction sent under the kind's name
                photo.proposed_name, photo.proposed_key = kind.name, kind.key
        _forget_deletion(kind.key)
        db.session.add(KindDeletion(key=kind.key, name=kind.name, deleted_at=utcnow()))
        deleted = kind.name  # read before the commit expires the deleted row
        db.session.delete(kind)
        db.session.commit()
    return deleted, len(photos)


def kind_names() -> list[str]:
    """Every kind a photo may be labelled with: the live model's and the ones it is learning."""
    return [k.name for k in all_kinds()]
