"""Settings from the environment, with defaults that need no setup (SQLite, local files)."""

from __future__ import annotations

import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from binbot.errors import BinbotError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def load_config(instance_path: str) -> dict[str, Any]:
    # Folders given relative to where the server was started are made absolute: Flask-SQLAlchemy
    # reads a relative SQLite path from the instance folder, so `BINBOT_INSTANCE_DIR=instance`
    # looked for instance/instance/binbot.sqlite3 and the start failed.
    instance = Path(os.environ.get("BINBOT_INSTANCE_DIR") or instance_path).absolute()
    data = Path(os.environ.get("BINBOT_DATA_DIR") or instance / "data").absolute()
    return {
        "BINBOT_INSTANCE_DIR": str(instance),
        "SQLALCHEMY_DATABASE_URI": _database_url(
            os.environ.get("DATABASE_URL") or f"sqlite:///{instance / 'binbot.sqlite3'}"
        ),
        # A database restarted while the service was idle left every pooled connection dead:
        # each process's first request after it failed. Checked out, a connection is pinged.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "BINBOT_DATA_DIR": str(data),
        # The model published when the database has none yet.
        "BINBOT_STARTER_MODEL": os.environ.get("BINBOT_STARTER_MODEL")
        or str(PROJECT_ROOT / "models" / "starter"),
        # The built web app (npm run build) served at the site root.
        "BINBOT_WEBCLIENT_DIR": os.environ.get("BINBOT_WEBCLIENT_DIR")
        or str(PROJECT_ROOT / "webclient" / "dist"),
        # Whole request; a phone photo is a few MB, the web client sends a downscaled copy.
        "MAX_CONTENT_LENGTH": _int("BINBOT_MAX_UPLOAD_BYTES", 10 * 1024 * 1024, 1024),
        # Upload limits checked before decoding: pixels of a JPEG (decoded at a reduced scale),
        # of a PNG or WebP (decoded whole), and how much longer one side may be.
        "BINBOT_MAX_IMAGE_PIXELS": _int("BINBOT_MAX_IMAGE_PIXELS", 24_000_000, 1),
        "BINBOT_MAX_FULL_DECODE_PIXELS": _int("BINBOT_MAX_FULL_DECODE_PIXELS", 8_000_000, 1),
        "BINBOT_MAX_ASPECT_RATIO": _float("BINBOT_MAX_ASPECT_RATIO", 10, 1),
        "BINBOT_MIN_IMAGE_SIDE": _int("BINBOT_MIN_IMAGE_SIDE", 32, 1, 1024),
        # Stored photos are re-encoded to at most this side, as JPEG of this quality.
        "BINBOT_STORED_MAX_SIDE": _int("BINBOT_STORED_MAX_SIDE", 1600, 64),
        "BINBOT_STORED_JPEG_QUALITY": 90,
        # Retraining: the dataset corrections are added to, and when a silent worker is dead.
        "BINBOT_BASE_DATASET": os.environ.get("BINBOT_BASE_DATASET")
        or os.environ.get("BINBOT_DATASET"),
        "BINBOT_JOB_TIMEOUT": _float("BINBOT_JOB_TIMEOUT", 300, 1),
        # A candidate more than this much less accurate than the published model is refused.
        "BINBOT_PUBLISH_MARGIN": _float("BINBOT_PUBLISH_MARGIN", 0.01, 0, 1),
        # Per-client limits (count, window in seconds), answered 429 with Retry-After.
        "BINBOT_LIMITS": {
            "uploads per minute": (_int("BINBOT_UPLOADS_PER_MINUTE", 30, 0), 60),
            "uploads per day": (_int("BINBOT_UPLOADS_PER_DAY", 500, 0), 86400),
            "failed console logins": (_int("BINBOT_LOGIN_FAILURES", 5, 0), 900),
            "failed admin tokens": (_int("BINBOT_TOKEN_FAILURES", 20, 0), 900),
            "proposals per day": (_int("BINBOT_PROPOSALS_PER_DAY", 30, 0), 86400),
        },
        # An IPv6 client is counted by its network: a connection is given a /64 at least.
        "BINBOT_IPV6_CLIENT_PREFIX": _int("BINBOT_IPV6_CLIENT_PREFIX", 64, 16, 128),
        # New submissions wait while this many are pending review, or while the data folder's
        # disk has less than this free.
        "BINBOT_MAX_PENDING": _int("BINBOT_MAX_PENDING", 5000, 1),
        "BINBOT_MIN_FREE_BYTES": _int("BINBOT_MIN_FREE_MB", 500, 0) * 1024 * 1024,
        # Behind the front (nginx): how many proxies set X-Forwarded-For (0: none trusted).
        "BINBOT_PROXIES": _int("BINBOT_PROXIES", 0, 0, 10),
        # Admin console sessions: signed cookie, HttpOnly, SameSite=Strict, Secure (browsers
        # accept Secure cookies from http://127.0.0.1 and localhost; set 0 only for plain HTTP
        # on another host, e.g. a test LAN).
        "SECRET_KEY": load_secret_key(instance),
        "SESSION_COOKIE_SECURE": _flag("BINBOT_SECURE_COOKIES", True),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Strict",
        "SESSION_COOKIE_NAME": "binbot_admin",
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=8),
    }


def _int(name: str, default: int, least: int, most: int | None = None) -> int:
    """A whole-number setting: a typo or a value out of bounds stops the start with a clear
    message instead of a traceback (or a server that refuses every upload)."""
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise BinbotError(f"{name} must be a whole number (got {raw!r})") from None
    return _bounded(name, value, least, most)


def _float(name: str, default: float, least: float, most: float | None = None) -> float:
    raw = os.environ.get(name, "").strip()
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise BinbotError(f"{name} must be a number (got {raw!r})") from None
    if value != value:  # NaN compares false with every bound
        raise BinbotError(f"{name} must be a number (got {raw!r})")
    return _bounded(name, value, least, most)


FLAG_WORDS = {"1": True, "true": True, "yes": True, "on": True,
              "0": False, "false": False, "no": False, "off": False}  # fmt: skip


def _flag(name: str, default: bool) -> bool:
    """A yes/no setting. "false" or "off" was read as yes (only "0" meant no), so an admin who
    wrote BINBOT_SECURE_COOKIES=false on a plain-HTTP LAN got cookies the browser never sent."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw not in FLAG_WORDS:
        raise BinbotError(f"{name} must be 1 or 0 (or true/false, yes/no, on/off; got {raw!r})")
    return FLAG_WORDS[raw]


def _bounded(name: str, value, least, most):
    if value < least or (most is not None and value > most):
        bounds = f"from {least} to {most}" if most is not None else f"at least {least}"
        raise BinbotError(f"{name} must be {bounds} (got {value})")
    return value


def _database_url(url: str) -> str:
    """DATABASE_URL, checked to name a database BinBot can talk to (SQLite, PostgreSQL)."""
    try:
        backend = make_url(url).get_backend_name()
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        backend = f"none ({exc})"
    if backend not in ("sqlite", "postgresql"):
        raise BinbotError(
            f"DATABASE_URL names a database BinBot cannot use: {backend}; it takes "
            "sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/NAME"
        )
    return url


def masked_database_url(url: str) -> str:
    """The database URL with its password hidden, for logs and error messages."""
    return make_url(url).render_as_string(hide_password=True)


def load_secret_key(instance: Path) -> str:
    """BINBOT_SECRET_KEY, or a random key kept in the instance folder (shared by all workers)."""
    if key := os.environ.get("BINBOT_SECRET_KEY"):
        return key
    path = instance / "secret_key"
    instance.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return path.read_text().strip()
    # Written whole under a temporary name, then linked into place, which fails if another
    # worker got there first. Created in place, the file was empty for a moment, and a worker
    # starting at that moment read "" as its key (3 of 100 starts of 8 workers at once).
    handle, temporary = tempfile.mkstemp(dir=instance, prefix=".secret_key-")
    try:
        with os.fdopen(handle, "w") as out:  # mkstemp: readable by this user only
            out.write(secrets.token_urlsafe(48))
        os.link(temporary, path)
    except FileExistsError:
        pass  # another worker's key is in place: everyone uses that one
    finally:
        os.unlink(temporary)
    return path.read_text().strip()
