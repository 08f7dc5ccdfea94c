"""Serves the built web client (webclient/dist) at the site root, next to the API.

The headers every response carries (isolation, CSP) are ``server.security``'s. The service worker
and the page are revalidated on every load (no-cache) so a new build reaches phones on their
next visit; offline, the service worker answers from its own cache.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from flask import Blueprint, current_app, request, send_from_directory
from werkzeug.routing import PathConverter
from werkzeug.security import safe_join

from server.errors import Unavailable

webclient = Blueprint("webclient", __name__)

MIME_TYPES = {".wasm": "application/wasm", ".webmanifest": "application/manifest+json"}


def _dist() -> Path:
    dist = Path(current_app.config["BINBOT_WEBCLIENT_DIR"])
    if not (dist / "index.html").is_file():
        raise Unavailable(
            f"the web client is not built (no {dist / 'index.html'}): run `npm run build`"
        )
    return dist


@webclient.get("/")
def index():
    return _static(_dist(), "index.html")


class AppFilePath(PathConverter):
    """``<app_file:name>``: any path but the API's and the console's, which their own routes
    answer. A catch-all that matched them too lent its GET to their POST-only endpoints
    (OPTIONS and a PUT's 405 listed GET, and a GET needed a second lookup to answer 405), and
    a POST to a mistyped API address read "method not allowed" instead of "no API endpoint"."""

    regex = r"(?!(?:api|admin)(?:/|$))[^/].*?"


@webclient.get("/<app_file:name>")
def asset(name: str):
    response = _static(_dist(), name)
    if name == "sw.js":
        response.headers["Service-Worker-Allowed"] = "/"
    return response


def _static(dist: Path, name: str):
    """A file of the app, revalidated on every load; its gzip copy (made by the build) to
    browsers that accept gzip."""
    mimetype = MIME_TYPES.get(Path(name).suffix) or mimetypes.guess_type(name)[0]
    packed = dist / f"{name}.gz"
    if "gzip" in request.accept_encodings and packed.is_file() and safe_join(str(dist), name):
        response = send_from_directory(dist, f"{name}.gz", mimetype=mimetype, max_age=0)
        response.headers["Content-Encoding"] = "gzip"
    else:
        response = send_from_directory(dist, name, mimetype=mimetype, max_age=0)
    response.vary.add("Accept-Encoding")
    response.cache_control.no_cache = True
    return response
