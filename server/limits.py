"""Limits on what one client may ask of the service: counted in the database, so every
gunicorn worker (and every machine behind the same database) shares one count.

A limit is a fixed window: at most ``limit`` hits per ``window`` seconds for a key such as
``upload:<client>``. Over it, the request is answered 429 with ``Retry-After`` saying when the
window ends. The client is the connecting address, or, behind the front (``BINBOT_PROXIES``),
the address the front reports.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import current_app, request
from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite

from server.errors import ServiceError
from server.extensions import db
from server.tables import RateCount


class TooManyRequests(ServiceError, status=429):
    """The client asked for more than its share; Retry-After says when it may again."""


@dataclass(frozen=True)
class Limit:
    name: str
    limit: int
    window: int  # seconds

    def hit(self, who: str | None = None) -> None:
        """Count one request; TooManyRequests when the window's count is over the limit."""
        if self.limit > 0:
            start = self._window_start()
            count = _increment(self._key(who), start)
            if count > self.limit:
                self._refuse(start)
            if count == 1:
                _forget_before(start - 2 * 86400)

    def check(self, who: str | None = None) -> None:
        """TooManyRequests if the limit is used up already, without counting this request
        (failed logins: the check comes before the token is even looked at)."""
        if self.limit > 0:
            start = self._window_start()
            row = db.session.get(RateCount, (self._key(who), start))
            if row is not None and row.count >= self.limit:
                self._refuse(start)

    def _key(self, who: str | None) -> str:
        return f"{self.name}:{who or client_address()}"

    def _window_start(self) -> int:
        now = int(time.time())
        return now - now % self.window

    def _refuse(self, start: int) -> None:
        retry = max(start + self.window - int(time.time()), 1)
        raise TooManyRequests(
            f"too many requests: {self.limit} per {_span(self.window)} for {self.name}; "
            f"try again in {retry} s",
            headers={"Retry-After": str(retry)},
        )


def client_address() -> str:
    return request.remote_addr or "unknown"


def configured(name: str) -> Limit:
    """The limit ``name`` with its count and window from the app's config."""
    limit, window = current_app.config["BINBOT_LIMITS"][name]
    return Limit(name, limit, window)


def _increment(key: str, start: int) -> int:
    dialect = db.engine.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(RateCount)
        .values(key=key, window_start=start, count=1)
        .on_conflict_do_update(
            index_elements=["key", "window_start"], set_={"count": RateCount.count + 1}
        )
        .returning(RateCount.count)
    )
    count = db.session.execute(statement).scalar_one()
    db.session.commit()
    return count


def _forget_before(moment: int) -> None:
    db.session.execute(delete(RateCount).where(RateCount.window_start < moment))
    db.session.commit()


def _span(seconds: int) -> str:
    return {60: "minute", 3600: "hour", 86400: "day"}.get(seconds, f"{seconds} s")
