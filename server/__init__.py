"""BinBot's backend: a Flask app that serves the model and collects labelled photos.

``create_app`` is the app factory (as in the Flask tutorial): configuration from environment
variables with embedded defaults (SQLite in the instance folder, files on local disk),
extensions bound here, blueprints registered here, and the shipped starter model registered
and published the first time the database has no published model.
"""

from __future__ import annotations

from typing import Any

from flask import Flask

from server.config import load_config


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_mapping(load_config(app.instance_path))
    if overrides:
        app.config.update(overrides)

    from server.admin import admin
    from server.api import api
    from server.console import console
    from server.database import init_database
    from server.errors import register_error_handlers
    from server.model_store import ensure_published_model
    from server.webclient import webclient

    init_database(app)
    register_error_handlers(app)
    app.register_blueprint(api)
    app.register_blueprint(admin)
    app.register_blueprint(console)
    app.register_blueprint(webclient)
    with app.app_context():
        ensure_published_model()
    return app
