"""Reading numbers and JSON bodies from requests that may be forged.

Why one place: a row id from a URL or a body goes straight into SQL, where a number past 64
bits is a driver error (a 500), and ``str.isdigit`` accepts digits ``int`` cannot read ("²").
A JSON body may be any JSON value, NaN included. Each reader here turns such input into a
``BadRequest`` (or a 404 for a URL) with a sentence the client can act on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from flask import request
from werkzeug.routing import IntegerConverter

from server.errors import BadRequest

MAX_KEY_LENGTH = 200  # an Idempotency-Key's characters (the columns that keep them)
ROW_ID_MAX = 2**63 - 1  # the largest id SQLite and PostgreSQL's BIGINT hold
_DECIMAL = re.compile(r"[0-9]{1,19}")


class RowIdConverter(IntegerConverter):
    """``<id:job_id>``: a positive id that fits the database, else the route does not match."""

    def __init__(self, map, **kwargs) -> None:
        super().__init__(map, min=1, max=ROW_ID_MAX, **kwargs)


def is_row_id(value: Any) -> bool:
    """A JSON value that can name a row: an integer (not a boolean) the database can hold."""
    return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= ROW_ID_MAX


def parse_row_id(text: str) -> int | None:
    """A row id written in ASCII decimal digits, or None."""
    if not _DECIMAL.fullmatch(text):
        return None
    value = int(text)
    return value if 1 <= value <= ROW_ID_MAX else None


def whole_number(
    args: Mapping[str, str], name: str, default: int, minimum: int, maximum: int = 10**12
) -> int:
    """A query-string count (limit, offset, page): ASCII digits, from ``minimum`` to
    ``maximum`` (far below what the database counts to, so offsets computed from it fit)."""
    text = args.get(name) or str(default)
    if not _DECIMAL.fullmatch(text) or int(text) > maximum:
        raise BadRequest(f"{name} must be a whole number, at most {maximum:,}, got {text[:40]!r}")
    return max(int(text), minimum)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def json_object(*fields: str) -> dict[str, Any]:
    """The request's JSON body as an object; an empty body is ``{}`` (every field optional).

    Anything else (not JSON, NaN or Infinity, an array, a number) is a ``BadRequest``, and so
    is a field outside ``fields`` when they are given: a misspelt or misplaced option must not
    be dropped silently (``{"head_epochs": 5}`` would otherwise start a default retraining).
    """
    raw = request.get_data(cache=True)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise BadRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    if fields:
        only_fields(body, fields, "field", "this request")
    return body


def text_field(body: dict[str, Any], name: str) -> str:
    """A field of a JSON body that must be text ('' when absent): turned into text instead, a
    name sent as ``{"a": 1}`` became the kind "{'a': 1}"."""
    value = body.get(name, "")
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be text")
    return value


def only_fields(body: dict[str, Any], fields: Sequence[str], noun: str, owner: str) -> None:
    """A ``BadRequest`` naming the first key of ``body`` outside ``fields``: a misspelt or
    misplaced field must not be dropped silently (a request body, or an object inside one)."""
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise BadRequest(f"unknown {noun} {unknown[0][:40]!r}; {owner} takes {', '.join(fields)}")


def request_key(key: str | None) -> str | None:
    """An ``Idempotency-Key`` (or a form's key): a request sent again with it is the same
    request. None when there is none; a BadRequest when it is empty, too long or not text."""
    if key is not None and not (0 < len(key) <= MAX_KEY_LENGTH and key.isprintable()):
        raise BadRequest(f"Idempotency-Key must be 1-{MAX_KEY_LENGTH} printable characters")
    return key
