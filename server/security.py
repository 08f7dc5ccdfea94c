"""Headers every answer carries, and trusting the front's client address.

- Cross-origin isolation (COOP/COEP): without it browsers refuse SharedArrayBuffer and TF.js's
  wasm backend would run on one thread.
- A Content-Security-Policy that lets only this site's own scripts, styles, images and
  connections in: ``'wasm-unsafe-eval'`` for TF.js's WebAssembly, ``blob:`` for its worker
  threads and the photos the page shows, ``frame-ancestors 'none'`` so no other site can frame
  the app or the console.
- No referrer leaves the site; no content-type sniffing.
"""

from __future__ import annotations

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'wasm-unsafe-eval' blob:",
        "worker-src 'self' blob:",
        "img-src 'self' blob: data:",
        "media-src 'self' blob:",
        "connect-src 'self'",
        "style-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Embedder-Policy": "require-corp",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def add_security_headers(response: Response) -> Response:
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def init_security(app: Flask) -> None:
    app.after_request(add_security_headers)
    if proxies := app.config["BINBOT_PROXIES"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)
