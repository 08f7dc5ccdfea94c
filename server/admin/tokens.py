"""Admin credentials: bearer tokens, stored only as hashes, checked on every admin API call."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from datetime import timedelta
from functools import wraps

from flask import g, request
from sqlalchemy import delete, func, select, update

from binbot.errors import BinbotError
from server.errors import Conflict, Forbidden, NotFound, Unauthorized
from server.extensions import db, write_lock
from server.limits import Limit, configured
from server.tables import AdminToken, ConsoleSession, as_utc, utcnow


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


NOTE_LENGTH = 100
# PostgreSQL's advisory lock key for revoking tokens ("BinT" in ASCII; see ``write_lock``).
TOKENS_LOCK = 0x42696E54
# A token's last use is written at most this often: not a database write per API call.
USE_RESOLUTION = timedelta(minutes=1)


def create_admin_token(note: str | None = None) -> str:
    """A new admin token; the caller shows it once, the database keeps only its hash."""
    token = secrets.token_urlsafe(32)
    db.session.add(AdminToken(token_sha256=_digest(token), note=checked_note(note)))
    db.session.commit()
    return token


def checked_note(note: str | None) -> str | None:
    """A token's note as given, trimmed; BinbotError for one too long or with control
    characters (it is printed in a terminal)."""
    if note is None or not note.strip():
        return None
    note = " ".join(note.split())
    if len(note) > NOTE_LENGTH:
        raise BinbotError(f"a token's note is at most {NOTE_LENGTH} characters (got {len(note)})")
    if any(unicodedata.category(c).startswith("C") for c in note):
        raise BinbotError("a token's note cannot hold control or invisible format characters")
    return note


def token_count() -> int:
    return db.session.scalar(select(func.count(AdminToken.id)))


def admin_token_exists() -> bool:
    return token_count() > 0


def find_token(token: str) -> AdminToken | None:
    """The stored token this one is, compared in constant time; None when it is not one."""
    digest = _digest(token)
    for row in db.session.scalars(select(AdminToken)):
        if hmac.compare_digest(digest, row.token_sha256):
            return row
    return None


def checked_token(token: str, failures: Limit) -> AdminToken | None:
    """``find_token``, throttled: a client with too many failures is refused before its
    token is even looked at, and each failure counts."""
    failures.check()
    row = find_token(token) if token else None
    if row is None or not _note_use(row):
        failures.hit()
        return None
    return row


def _note_use(row: AdminToken) -> bool:
    """Record the token's use (at most once per ``USE_RESOLUTION``); False when the token was
    revoked since it was read (an admin revoking it at this moment: it is not valid)."""
    now = utcnow()
    if row.last_used_at is not None and now - as_utc(row.last_used_at) < USE_RESOLUTION:
        return True
    # A conditional UPDATE, not the ORM row's: a token revoked in between is no row to update
    # (the ORM's flush raised StaleDataError, a 500, for the request racing a revocation).
    # On a connection of its own: committing the request's session would expire its rows.
    with db.engine.begin() as connection:
        changed = connection.execute(
            update(AdminToken).where(AdminToken.id == row.id).values(last_used_at=now)
        ).rowcount
    return changed == 1


def list_tokens() -> list[AdminToken]:
    return list(db.session.scalars(select(AdminToken).order_by(AdminToken.id)))


def revoke_token(token_id: int) -> bool:
    """Delete a token, and with it every console session opened with it."""
    row = db.session.get(AdminToken, token_id)
    if row is None:
        return False
    db.session.execute(delete(ConsoleSession).where(ConsoleSession.token_id == token_id))
    db.session.delete(row)
    db.session.commit()
    return True


def revoke_keeping_one(token_id: int) -> str:
    """``revoke_token`` for the console and the admin API, which must not lock every admin
    out: the last token is refused (the server's shell makes another, ``binbot token new``,
    then this one can go). Returns how to name the revoked token ("token 2 (Alice's laptop)").
    Under a lock: two admins revoking the last two tokens at once both counted two."""
    write_lock(TOKENS_LOCK, AdminToken)
    try:
        # Read again under the lock: the row this request read before may be gone since.
        row = db.session.get(AdminToken, token_id, populate_existing=True)
        if row is None:
            raise NotFound(f"no admin token {token_id}")
        if token_count() == 1:
            raise Conflict(
                "it is the only admin token: nobody could log in after it. Make another first "
                "(binbot token new on the server)"
            )
    except BaseException:
        db.session.rollback()  # the lock goes back at once
        raise
    named = f"token {row.id}" + (f" ({row.note})" if row.note else "")
    revoke_token(token_id)
    return named


def admin_required(view):
    """401 without credentials, 403 with wrong ones, 429 after too many wrong ones."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise Unauthorized(
                "admin authentication required",
                headers={"WWW-Authenticate": 'Bearer realm="binbot-admin"'},
            )
        token = token.strip() if scheme.lower() == "bearer" else ""
        if (row := checked_token(token, configured("failed admin tokens"))) is None:
            raise Forbidden("invalid admin credentials")
        g.admin_token_id = row.id  # which token this request came with (GET /tokens says)
        return view(*args, **kwargs)

    return wrapper
