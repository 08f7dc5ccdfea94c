"""The public API the web app talks to: labels, the published model, its files, submissions."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request, send_file, url_for

from server.errors import NotFound, ServerFault, Unavailable
from server.public.submissions import check_fields_once, store_submission
from server.registry.bundles import bundle_dir, find_version, published_version
from server.registry.kinds import advice_version, all_kinds, guidance_for, kind_names
from server.tables import ModelVersion, iso_utc

api = Blueprint("api", __name__, url_prefix="/api")
ONE_YEAR = 365 * 24 * 3600


def published_or_503() -> ModelVersion:
    current = published_version()
    if current is None:
        raise Unavailable("no model is published yet")
    return current


@api.get("/ping")
def ping():
    """BinBot's smallest answer. The app asks it before uploading again when something else (a
    Wi-Fi sign-in page, a proxy) answered its last upload, so that a photo is not sent into
    the page every 30 s; no database, nothing cached on the way."""
    response = jsonify({"service": "binbot"})
    response.cache_control.no_store = True
    return response


@api.get("/labels")
def labels():
    manifest = published_or_503().manifest
    return jsonify(
        {
            "model_version": manifest["version"],
            "advice_version": advice_version(),
            "labels": [{"name": n, "guidance": guidance_for(n)} for n in manifest["labels"]],
        }
    )


@api.get("/advice")
def advice():
    """Every kind's disposal advice; phones revalidate it at each check (ETag = its version)."""
    version = advice_version()
    if request.if_none_match and str(version) in request.if_none_match:
        response = current_app.response_class(status=304)
    else:
        kinds = {k.name: guidance_for(k.name) for k in all_kinds()}
        # Phones look advice up by the live model's labels, which may spell a kind otherwise.
        live = published_version()
        for label in live.manifest["labels"] if live else []:
            if label not in kinds:  # (setdefault would look every label's advice up again)
                kinds[label] = guidance_for(label)
        response = jsonify({"advice_version": version, "kinds": kinds})
    response.headers["ETag"] = f'"{version}"'
    response.cache_control.no_cache = True
    return response


@api.get("/models/current")
def current_model():
    """The published manifest and where its files are. Revalidated on every check (no-cache)."""
    row = published_or_503()
    if request.if_none_match and row.version in request.if_none_match:
        response = current_app.response_class(status=304)
    else:
        manifest = row.manifest
        files = [
            {**f, "url": url_for("api.model_file", version=row.version, name=f["path"])}
            for f in manifest["files"]
        ]
        model_url = url_for("api.model_file", version=row.version, name=manifest["model"])
        response = jsonify(
            {
                "version": row.version,
                "published_at": iso_utc(row.published_at),
                "base_url": model_url.rsplit("/", 1)[0] + "/",
                "model_url": model_url,
                "files": files,
                "manifest": manifest,
            }
        )
    response.headers["ETag"] = f'"{row.version}"'
    response.cache_control.no_cache = True
    return response


@api.get("/models/<version>/<path:name>")
def model_file(version: str, name: str):
    """A file of a model version: immutable, so cached for a year and revalidated by hash."""
    listed = {f["path"]: f["sha256"] for f in find_version(version).manifest["files"]}
    if name not in listed:  # only files the manifest names: no path tricks
        raise NotFound(f"model {version} has no file {name!r}")
    path = bundle_dir(version) / name
    if not path.is_file():  # gone from the data disk: the server's fault, said as such
        current_app.logger.error("model %s: %s is missing from %s", version, name, path.parent)
        raise ServerFault(f"model {version}'s file {name} is missing on the server")
    mimetype = "application/json" if name.endswith(".json") else "application/octet-stream"
    # max_age given to send_file: set afterwards, it would keep send_file's "no-cache".
    response = send_file(
        path, mimetype=mimetype, etag=listed[name], conditional=True,
        max_age=ONE_YEAR,
    )  # fmt: skip
    response.cache_control.immutable = True
    return response


@api.post("/submissions")
def create_submission():
    """Store a labelled photo: 201 when new, 200 for a retry or a photo already stored."""
    published_or_503()
    labels = kind_names()
    check_fields_once(request.form, request.files)
    stored = store_submission(
        request.form, request.files.get("image"), request.headers.get("Idempotency-Key"), labels
    )
    return jsonify(stored.as_dict()), 201 if stored.created else 200
