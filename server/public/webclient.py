"""Serves the built web client (webclient/dist) at the site root, next to the API.

The headers every response carries (isolation, CSP) are ``server.security``'s. The service worker
and the page are revalidated on every load (no-cache) so a new build reaches phones on their
next visit; offline, the service worker answers from its own cache.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from flask import Blueprint, current_app, request, send_from_directory
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.exceptions import NotFound as FileNotFound
from werkzeug.security import safe_join

from server.errors import NotFound, Unavailable

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


@webclient.get("/<path:name>")
def asset(name: str):
    dist = _dist()
    try:
        if name.startswith("api/"):
            raise NotFound(f"no API endpoint /{name}")
        response = _static(dist, name)
    except (NotFound, FileNotFound):
        # GET /api/submissions met this catch-all and read "no API endpoint": it is a POST one.
        if methods := other_methods(request.path):
            raise MethodNotAllowed(valid_methods=methods) from None
        raise
    if name == "sw.js":
        response.headers["Service-Worker-Allowed"] = "/"
    return response


def other_methods(path: str) -> list[str]:
    """The methods of another route at ``path`` (a POST-only endpoint, say), which a GET or
    HEAD for it reaches this catch-all instead of Flask's 405. Asked only once no file
    answers, so serving the app's files does not match every route again."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    return sorted(set(adapter.allowed_methods(path)) - {"GET", "HEAD", "OPTIONS"})


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
