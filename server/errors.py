"""The service's one error model: an exception per HTTP status, answered in one place.

Code anywhere in the server raises a ``ServiceError`` subclass with a message for people;
``register_error_handlers`` turns it (and Flask's own HTTP errors: 404 routes, 405, 413) into
the answer the client can read: a JSON ``{"error", "status"}`` for API clients and the web app
(with ``"field"`` when the fault is in one field that a person can put right),
an HTML page for someone using the admin console in a browser.
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from binbot.errors import shortened
from binbot.files import is_disk_full


class ServiceError(Exception):
    """A request the service will not or cannot carry out, and why, in one sentence.

    Each kind names its HTTP status where it is declared: ``class NotFound(ServiceError,
    status=404)``; a subclass of a kind keeps its status (``PublishRefused(Conflict)``).
    """

    status = 500

    def __init_subclass__(cls, status: int | None = None, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status

    def __init__(
        self, message: str, *, headers: dict[str, str] | None = None, field: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        # The request field at fault, where the person who filled it in can put it right
        # (the web app opens the name again after "the name mixes alphabets").
        self.field = field


class BadRequest(ServiceError, status=400):
    """The request is malformed: a field is missing, or a value has the wrong type or range."""


class Unauthorized(ServiceError, status=401):
    """No credentials came with a request that needs them."""


class Forbidden(ServiceError, status=403):
    """The credentials that came are not valid here."""


class NotFound(ServiceError, status=404):
    """The thing asked for does not exist (or is not reachable this way)."""


class Conflict(ServiceError, status=409):
    """The request clashes with the current state: a finished job, a refused publish."""


class PreconditionFailed(ServiceError, status=412):
    """An edit made from a state that has changed since (``If-Match`` no longer holds)."""


class PayloadTooLarge(ServiceError, status=413):
    """The upload is bigger than the service takes (in bytes or in decoded pixels)."""


class UnsupportedMediaType(ServiceError, status=415):
    """The upload is not a kind of file the service reads."""


class Unprocessable(ServiceError, status=422):
    """Well-formed, but meaningless here: an unknown label, a bundle that breaks its schema."""


class Unavailable(ServiceError, status=503):
    """The service cannot answer now: no model published, the review queue full, ..."""


class ServerFault(ServiceError, status=500):
    """Something on the service's side is broken (a stored file gone): said plainly, and
    logged, rather than Flask's "internal error" page with a traceback in the log only."""


class InsufficientStorage(ServiceError, status=507):
    """The disk that would keep the upload is nearly full."""


CONSOLE_PREFIX = "/admin"


def wants_html() -> bool:
    """A person in the admin console's pages, rather than a script or the web app."""
    if not is_under(request.path, CONSOLE_PREFIX) or request.path.endswith(".json"):
        return False
    return request.accept_mimetypes.best_match(["text/html", "application/json"]) == "text/html"


def error_response(
    message: str,
    status: int,
    headers: dict[str, str] | None = None,
    field: str | None = None,
) -> Response:
    if wants_html():
        page = render_template("error.html", message=message, status=status)
        response = Response(page, status=status, mimetype="text/html")
    else:
        body = {"error": message, "status": status} | ({"field": field} if field else {})
        response = jsonify(body)
        response.status_code = status
    response.headers.update(headers or {})
    return response


def too_large_message(app: Flask) -> str:
    """Which limit a 413 hit: the body's size, or (a body within it) the form's shape, which
    Werkzeug also answers 413: too many parts, or a text field over its memory limit."""
    limit = app.config.get("MAX_CONTENT_LENGTH")
    sent = request.content_length
    if limit is None or sent is None or sent > limit:
        return f"request too large (limit {limit} bytes)"
    return (
        f"the form has too many fields (at most {app.config['MAX_FORM_PARTS']}) or a text "
        f"field over {app.config['MAX_FORM_MEMORY_SIZE']} bytes"
    )


DATABASE_RETRY_SECONDS = 30
# When a full review queue or a full disk may have room again.
FULL_RETRY_SECONDS = 3600


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ServiceError)
    def service_error(exc: ServiceError) -> Response:
        return error_response(exc.message, exc.status, exc.headers, exc.field)

    @app.errorhandler(FileNotFoundError)
    def stored_file_missing(exc: FileNotFoundError) -> Response:
        """A stored file (a photo, a report) gone from the data disk: said as the server's
        fault, in the answer's usual form, instead of Flask's anonymous 500."""
        app.logger.error("a stored file is missing: %s", exc.filename)
        return error_response("a file this answer needs is missing on the server", 500)

    @app.errorhandler(OSError)
    def disk_error(exc: OSError) -> Response:
        """A write the data disk could not take (full, over quota) is a 507 that says to come
        back, as the upload check says when the disk is nearly full: the web app keeps the
        correction and retries after Retry-After. Files are written beside their place and
        moved in whole, so nothing half-written is left. Any other failure to read or write
        is the server's fault, logged with its traceback."""
        if is_disk_full(exc):
            app.logger.error("the data disk is full: %s", exc)
            return error_response(
                "the server's disk is full; try again later",
                507,
                {"Retry-After": str(FULL_RETRY_SECONDS)},
            )
        app.logger.exception("a file could not be read or written")
        return error_response("the server could not read or write a file it needs", 500)

    @app.errorhandler(OperationalError)
    def database_unavailable(exc: OperationalError) -> Response:
        """The database down, restarting or busy: a 503 that says to come back (phones keep
        their corrections and retry after Retry-After), not a 500 that reads like a bug. The
        request's session is removed at teardown, as after any request."""
        app.logger.warning("database unavailable: %s", str(exc.orig or exc).strip()[:300])
        return error_response(
            "the service's database is unavailable; try again shortly",
            503,
            {"Retry-After": str(DATABASE_RETRY_SECONDS)},
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response:
        if exc.code == 413:
            return error_response(too_large_message(app), 413)
        if isinstance(exc, MethodNotAllowed):
            headers = dict(exc.get_headers())
            headers.pop("Content-Type", None)
            return error_response(not_allowed_message(exc.valid_methods or []), 405, headers)
        if exc.code == 404:
            return error_response(not_found_message(), 404)
        return error_response(exc.description or exc.name, exc.code or 500)


def not_found_message() -> str:
    """A mistyped address (no route, or no file of the web app): which part of the service
    it missed, and the address cut short, since it is the sender's text. Routes that find
    nothing raise ``NotFound`` above with their own sentence."""
    path = shortened(request.path, 80)
    if is_under(request.path, "/api"):
        return f"no API endpoint {path}"
    if is_under(request.path, CONSOLE_PREFIX):
        return f"no console page {path}"
    return f"no page or file {path}"


def is_under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def not_allowed_message(valid_methods: list[str]) -> str:
    """A 405 that says what the address takes: "GET is not allowed here; this address takes
    POST" rather than Werkzeug's sentence, which does not."""
    takes = [method for method in valid_methods if method not in ("HEAD", "OPTIONS")]
    return f"{request.method[:20]} is not allowed here; this address takes {' or '.join(takes)}"
