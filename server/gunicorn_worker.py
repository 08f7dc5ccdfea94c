"""gunicorn's threaded worker, answering the requests gunicorn refuses itself in JSON.

gunicorn parses each request before Flask sees it, and refuses some on its own: a header over
its size limit (431), a request line too long (414), a malformed request (400). It answers
those with an HTML page. BinBot's clients (the web app, scripts, the console's JavaScript)
expect every refusal as the JSON ``{"error", "status"}`` that ``server.errors`` gives, so this
worker has gunicorn write that instead. Behind the front (``--front``), nginx answers such
requests itself, with the same JSON (``server/front.py``).
"""

from __future__ import annotations

import json

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's ``util.write_error``, writing the service's JSON error instead of HTML."""
    body = json.dumps({"error": f"{reason}: {mesg}", "status": status_int}).encode()
    head = (
        f"HTTP/1.1 {status_int} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    util.write_nonblock(sock, head.encode("latin1") + body)


class JsonErrorThreadWorker(ThreadWorker):
    """``--worker-class gthread`` whose own refusals are JSON (see the module's docstring)."""

    def init_process(self) -> None:
        # gunicorn's handle_error looks write_error up in its util module at each call; set in
        # the worker process before it serves, so every thread of it uses this one.
        util.write_error = write_json_error
        super().init_process()
