"""Serves the built web client (webclient/dist) at the site root, next to the API.

Every response carries the cross-origin isolation headers (COOP/COEP): without them browsers
refuse SharedArrayBuffer, and TF.js's wasm backend would run on one thread. The service worker
and the page are revalidated on every load (no-cache) so a new build reaches phones on their
next visit; offline, the service worker answers from its own cache.
"""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, current_app, send_from_directory

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


@webclient.after_app_request
def isolate(response: Response) -> Response:
    response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    response.headers.setdefault("Cross-Origin-Embedder-Policy", "require-corp")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


@webclient.get("/")
def index():
    response = send_from_directory(_dist(), "index.html", max_age=0)
    response.cache_control.no_cache = True
    return response


@webclient.get("/<path:name>")
def asset(name: str):
    dist = _dist()
    if name.startswith("api/"):
        raise NotFound(f"no API endpoint /{name}")
    mimetype = MIME_TYPES.get(Path(name).suffix)
    response = send_from_directory(dist, name, mimetype=mimetype, max_age=0)
    response.cache_control.no_cache = True
    if name == "sw.js":
        response.headers["Service-Worker-Allowed"] = "/"
    return response
