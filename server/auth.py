"""Admin authentication for the API: bearer tokens, stored only as hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import wraps

from flask import request
from sqlalchemy import select

from server.database import db
from server.errors import error_response
from server.models import AdminToken


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_admin_token() -> str:
    """A new admin token; the caller shows it once, the database keeps only its hash."""
    token = secrets.token_urlsafe(32)
    db.session.add(AdminToken(token_sha256=_digest(token)))
    db.session.commit()
    return token


def token_is_valid(token: str) -> bool:
    digest = _digest(token)
    known = db.session.scalars(select(AdminToken.token_sha256)).all()
    return any(hmac.compare_digest(digest, k) for k in known)


def admin_required(view):
    """401 without credentials, 403 with wrong ones."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            response = error_response("admin authentication required", 401)
            response.headers["WWW-Authenticate"] = 'Bearer realm="binbot-admin"'
            return response
        if scheme.lower() != "bearer" or not token or not token_is_valid(token.strip()):
            return error_response("invalid admin credentials", 403)
        return view(*args, **kwargs)

    return wrapper
