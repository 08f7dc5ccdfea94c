"""Console sessions: log in with an admin token, a signed session cookie, CSRF on every change.

The cookie is HttpOnly, SameSite=Strict and Secure (config), and holds only a random session
id and CSRF token; the session itself is a row on the server, so logging out, or revoking the
admin token it was opened with, ends it everywhere, even for a copy of the cookie. Every POST
to the console must carry that token (form field ``csrf_token`` or header ``X-CSRF-Token``),
so another site cannot make an admin's browser change anything even if SameSite were not
honoured.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime
from functools import wraps

from flask import current_app, redirect, request, session, url_for
from sqlalchemy import delete, select

from server.errors import BadRequest, Unauthorized, wants_html
from server.extensions import db
from server.tables import AdminToken, ConsoleSession, utcnow


def log_in(token: AdminToken) -> None:
    """A new session on the server, named in the signed cookie (never the token itself).
    Sessions past their lifetime go at the same time: a session nobody logged out of was
    kept for ever."""
    session.clear()
    session_id = secrets.token_urlsafe(32)
    db.session.execute(delete(ConsoleSession).where(ConsoleSession.created_at < _oldest_alive()))
    db.session.add(ConsoleSession(id=_digest(session_id), token_id=token.id))
    db.session.commit()
    session.permanent = True
    session["sid"] = session_id
    session["csrf"] = secrets.token_urlsafe(32)


def log_out() -> None:
    if sid := session.get("sid"):
        db.session.execute(delete(ConsoleSession).where(ConsoleSession.id == _digest(sid)))
        db.session.commit()
    session.clear()


def logged_in() -> bool:
    """The cookie names a session the server still has (not logged out, token not revoked)
    and that is within its lifetime: the server's own clock decides, not only the cookie's
    signed timestamp."""
    sid = session.get("sid")
    if not sid:
        return False
    alive = (ConsoleSession.id == _digest(sid)) & (ConsoleSession.created_at >= _oldest_alive())
    return db.session.scalar(select(ConsoleSession.id).where(alive)) is not None


def session_token_id() -> int | None:
    """The number of the admin token this console session was opened with."""
    sid = session.get("sid")
    if not sid:
        return None
    return db.session.scalar(
        select(ConsoleSession.token_id).where(ConsoleSession.id == _digest(sid))
    )


def _oldest_alive() -> datetime:
    return utcnow() - current_app.permanent_session_lifetime


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def local_target(text: str | None, fallback: str) -> str:
    """Where to go after a form: a console page of this site, never another site."""
    if not text:
        return fallback
    if not text.isprintable() or "\\" in text:
        raise BadRequest("the return address has characters that are not allowed")
    if not text.startswith("/admin") or text.startswith("//"):
        return fallback  # an attacker's link must not bounce admins elsewhere
    return text


def csrf_token() -> str:
    return session.get("csrf", "")


def check_csrf() -> None:
    """BadRequest unless the request carries this session's CSRF token."""
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(sent, expected):
        raise BadRequest("the form expired or did not come from this console (CSRF check)")


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not logged_in():
            session.clear()
            if not wants_html():
                raise Unauthorized("log in to the admin console first")
            return redirect(url_for("console.login", next=request.full_path))
        if request.method == "POST":
            check_csrf()
        return view(*args, **kwargs)

    return wrapper
