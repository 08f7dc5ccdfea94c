"""BinBot's backend: a Flask app that serves the web app and the model, collects labelled
photos, and lets admins review them, retrain and publish.

``create_app`` is the app factory (as in the Flask tutorial): configuration from environment
variables with embedded defaults (SQLite in the instance folder, files on local disk),
extensions and blueprints bound here, and nothing else. Preparing the database and the first
model is provisioning (``server.provision``: ``binbot serve``, ``binbot db upgrade``).

The packages, by concern:
- ``public``: what phones talk to (the web app, labels, the published model, submissions);
- ``admin``: the admin JSON API and the console, two faces over one service layer;
- ``jobs``: the retraining queue, the worker process and the retraining itself;
- ``registry``: model versions and their bundles, stored photos;
- ``tables``, ``extensions``, ``migrations``: the database.
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

    from server.admin.api import admin_api
    from server.admin.console import console
    from server.errors import register_error_handlers
    from server.extensions import init_extensions
    from server.public.api import api
    from server.public.webclient import AppFilePath, webclient
    from server.security import init_security
    from server.untrusted import RowIdConverter

    app.url_map.converters["id"] = RowIdConverter
    app.url_map.converters["app_file"] = AppFilePath
    init_extensions(app)
    init_security(app)
    register_error_handlers(app)
    for blueprint in (api, admin_api, console, webclient):
        app.register_blueprint(blueprint)
    return app
