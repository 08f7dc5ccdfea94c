"""Console sessions: log in with an admin token, a signed session cookie, CSRF on every change.

The cookie is HttpOnly, SameSite=Strict and Secure (config), and holds only "admin" and a
random CSRF token. Every POST to the console must carry that token (form field
``csrf_token`` or header ``X-CSRF-Token``), so another site cannot make an admin's browser
change anything even if SameSite were not honoured.
"""

from __future__ import annotations

import hmac
import secrets
from functools import wraps

from flask import redirect, request, session, url_for

from server.errors import BadRequest, Unauthorized, wants_html


def log_in() -> None:
    session.clear()
    session.permanent = True
    session["admin"] = True
    session["csrf"] = secrets.token_urlsafe(32)


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
        if not session.get("admin"):
            if not wants_html():
                raise Unauthorized("log in to the admin console first")
            return redirect(url_for("console.login", next=request.full_path))
        if request.method == "POST":
            check_csrf()
        return view(*args, **kwargs)

    return wrapper
