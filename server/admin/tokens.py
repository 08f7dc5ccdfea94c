"""Admin credentials: bearer tokens, stored only as hashes, checked on every admin API call."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from functools import wraps

from flask import request
from sqlalchemy import func, select

from server.errors import Forbidden, Unauthorized
from server.extensions import db
from server.tables import AdminToken


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_admin_token() -> str:
    """A new admin token; the caller shows it once, the database keeps only its hash."""
    token = secrets.token_urlsafe(32)
    db.session.add(AdminToken(token_sha256=_digest(token)))
    db.session.commit()
    return token


def admin_token_exists() -> bool:
    return db.session.scalar(select(func.count(AdminToken.id))) > 0


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
            raise Unauthorized(
                "admin authentication required",
                headers={"WWW-Authenticate": 'Bearer realm="binbot-admin"'},
            )
        if scheme.lower() != "bearer" or not token or not token_is_valid(token.strip()):
            raise Forbidden("invalid admin credentials")
        return view(*args, **kwargs)

    return wrapper
