"""Every error the API returns is JSON that says what went wrong, never an HTML page."""

from __future__ import annotations

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from server.uploads import RejectedUpload


def error_response(message: str, status: int):
    response = jsonify({"error": message, "status": status})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 413:
            limit = app.config.get("MAX_CONTENT_LENGTH")
            return error_response(f"request too large (limit {limit} bytes)", 413)
        return error_response(exc.description or exc.name, exc.code or 500)

    @app.errorhandler(RejectedUpload)
    def rejected(exc: RejectedUpload):
        return error_response(str(exc), exc.status)
