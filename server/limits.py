"""Limits on what one client may ask of the service: counted in the database, so every
gunicorn worker (and every machine behind the same database) shares one count.

A limit is at most ``limit`` hits per ``window`` seconds for a key such as ``upload:<client>``,
over a sliding window: the hits counted in the current fixed window plus those of the previous
one, weighted by how much of it the sliding window still covers. Plain fixed windows let a client
send twice the limit in a burst that straddles a window's end (five at 11:59:59, five more at
12:00:00). Over the limit, the request is answered 429 with ``Retry-After`` saying when one more
would be accepted. The client is the connecting address, or, behind the front
(``BINBOT_PROXIES``), the address the front reports; an IPv6 client is its whole network
prefix (``BINBOT_IPV6_CLIENT_PREFIX``, /64 by default), because one home or phone connection
is given a /64 or more and could otherwise turn every request into a new client.
"""

from __future__ import annotations

import ipaddress
import math
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
        """Count one request; TooManyRequests when the sliding window is over the limit."""
        if self.limit > 0:
            now = time.time()
            start = self._window_start(now)
            key = self._key(who)
            count = _increment(key, start)
            before = _count(key, start - self.window)
            if self._weighted(before, now - start) + count > self.limit:
                _increment(key, start, by=-1)  # a refused request uses none of the limit
                self._refuse(before, count - 1, now - start)
            if count == 1:
                _forget_before(start - 2 * 86400)

    def check(self, who: str | None = None) -> None:
        """TooManyRequests if one more hit would be over the limit, without counting this
        request (failed logins: the check comes before the token is even looked at)."""
        if self.limit > 0:
            now = time.time()
            start = self._window_start(now)
            key = self._key(who)
            count, before = _count(key, start), _count(key, start - self.window)
            if self._weighted(before, now - start) + count + 1 > self.limit:
                self._refuse(before, count, now - start)

    def _key(self, who: str | None) -> str:
        return f"{self.name}:{who or client_address()}"

    def _window_start(self, now: float) -> int:
        return int(now) - int(now) % self.window

    def _weighted(self, before: int, elapsed: float) -> float:
        """The previous window's hits that still fall inside the sliding window."""
        return before * max(0.0, 1 - elapsed / self.window)

    def _seconds_until_free(self, before: int, count: int, elapsed: float) -> float:
        """How long until one more hit would be accepted, if none comes in between: later in
        this window, as the previous one slides out, or else in the next one, as this one does."""
        room = self.limit - count - 1
        if room >= 0 and before > 0:
            wait = self.window * (1 - room / before) - elapsed
            if wait < self.window - elapsed:
                return max(wait, 0.0)
        later = self.window * max(0.0, 1 - (self.limit - 1) / count) if count else 0.0
        return self.window - elapsed + later

    def _refuse(self, before: int, count: int, elapsed: float) -> None:
        retry = max(math.ceil(self._seconds_until_free(before, count, elapsed)), 1)
        raise TooManyRequests(
            f"too many requests: {self.limit} per {_span(self.window)} for {self.name}; "
            f"try again in {retry} s",
            headers={"Retry-After": str(retry)},
        )


def client_address() -> str:
    return client_key(request.remote_addr, current_app.config["BINBOT_IPV6_CLIENT_PREFIX"])


def client_key(address: str | None, ipv6_prefix: int) -> str:
    """The name one client's requests are counted under: an IPv4 address as it is (also when
    it arrives IPv4-mapped, ``::ffff:a.b.c.d``), an IPv6 address as its network of
    ``ipv6_prefix`` bits, so that the 2**64 addresses of one /64 are one client."""
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address.split("%")[0])  # without a zone (fe80::1%eth0)
    except ValueError:
        return address  # not an address (a unix socket's peer): counted as it is
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, ipv6_prefix), strict=False))
    return str(ip)


def configured(name: str) -> Limit:
    """The limit ``name`` with its count and window from the app's config."""
    limit, window = current_app.config["BINBOT_LIMITS"][name]
    return Limit(name, limit, window)


def _increment(key: str, start: int, by: int = 1) -> int:
    dialect = db.engine.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(RateCount)
        .values(key=key, window_start=start, count=by)
        .on_conflict_do_update(
            index_elements=["key", "window_start"], set_={"count": RateCount.count + by}
        )
        .returning(RateCount.count)
    )
    count = db.session.execute(statement).scalar_one()
    db.session.commit()
    return count


def _count(key: str, start: int) -> int:
    row = db.session.get(RateCount, (key, start))
    return row.count if row is not None else 0


def _forget_before(moment: int) -> None:
    db.session.execute(delete(RateCount).where(RateCount.window_start < moment))
    db.session.commit()


def _span(seconds: int) -> str:
    return {60: "minute", 3600: "hour", 86400: "day"}.get(seconds, f"{seconds} s")
