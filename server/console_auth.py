"""Console sessions: log in with an admin token, a signed session cookie, CSRF on every change.

The cookie is HttpOnly, SameSite=Strict and Secure (config), and holds only "admin" and a
random CSRF token. Every POST to the console must carry that token (form field
``csrf_token`` or header ``X-CSRF-Token``), so another site cannot make an admin's browser
change anything even if SameSite were not honoured.
"""

from __future__ import annotations

import hmac
import os
import secrets
from functools import wraps
from pathlib import Path

from flask import abort, redirect, request, session, url_for


def load_secret_key(instance: Path) -> str:
    """BINBOT_SECRET_KEY, or a random key kept in the instance folder (shared by all workers)."""
    if key := os.environ.get("BINBOT_SECRET_KEY"):
        return key
    path = instance / "secret_key"
    instance.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as out:
        key = secrets.token_urlsafe(48)
        out.write(key)
    return key


def log_in() -> None:
    session.clear()
    session.permanent = True
    session["admin"] = True
    session["csrf"] = secrets.token_urlsafe(32)


def csrf_token() -> str:
    return session.get("csrf", "")


def check_csrf() -> None:
    """400 unless the request carries this session's CSRF token."""
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(400, description="the form expired or did not come from this console (CSRF check)")


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if not session.get("admin"):
            wants_json = request.accept_mimetypes.best == "application/json"
            if wants_json or request.path.endswith(".json"):
                abort(401, description="log in to the admin console first")
            return redirect(url_for("console.login", next=request.full_path))
        if request.method == "POST":
            check_csrf()
        return view(*args, **kwargs)

    return wrapper
