"""Shared fixtures: a seeded Keras weights cache and small datasets cut from the real one.

The real e-waste zip and MobileNetV2 weights come from BINBOT_DATASET and BINBOT_WEIGHTS_DIR
(the Makefile points them at ../shared). Tests that need them fail loudly when they are
missing rather than skip, so CI cannot go green without exercising the real pipeline.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import uuid
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from training.keras_cache import seed_keras_cache

WEIGHTS_FILE = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"
STARTER = Path(__file__).resolve().parent.parent / "models" / "starter"
# A real HEIC file (64x48, made with pillow-heif): an iPhone's default photo format.
IPHONE_PHOTO = Path(__file__).resolve().parent / "data" / "iphone-photo.heic"
STARTER_VERSION = json.loads((STARTER / "manifest.json").read_text())["version"]


def pytest_configure(config: pytest.Config) -> None:
    """Seed KERAS_HOME before anything imports keras (it reads the variable on import)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    home = Path(os.environ.get("KERAS_HOME") or Path(__file__).parent.parent / ".cache" / "keras")
    seed_keras_cache(os.environ.get("BINBOT_WEIGHTS_DIR"), home)


@pytest.fixture(scope="session")
def ewaste_zip() -> Path:
    path = os.environ.get("BINBOT_DATASET")
    if not path or not Path(path).is_file():
        pytest.fail(f"BINBOT_DATASET must point at the e-waste zip (got {path!r}); see README")
    return Path(path)


@pytest.fixture(scope="session")
def imagenet_weights() -> Path:
    cached = Path(os.environ["KERAS_HOME"]) / "models" / WEIGHTS_FILE
    if not cached.exists():
        pytest.fail(
            f"MobileNetV2 weights not in the Keras cache ({cached}); set BINBOT_WEIGHTS_DIR"
        )
    return cached


@pytest.fixture(scope="session")
def photo(ewaste_zip) -> bytes:
    """A real JPEG from the shared dataset's test split."""
    with zipfile.ZipFile(ewaste_zip) as archive:
        return archive.read("modified-dataset/test/Battery/battery_106.jpg")


@pytest.fixture(scope="session")
def small_ewaste(tmp_path_factory: pytest.TempPathFactory, ewaste_zip: Path) -> Path:
    """A real subset in split layout: per class 8 train, 3 val, 3 test images (folder)."""
    out = tmp_path_factory.mktemp("small-ewaste") / "dataset"
    keep = {"train": 8, "val": 3, "test": 3}
    taken: dict[tuple[str, str], int] = {}
    with zipfile.ZipFile(ewaste_zip) as archive:
        for name in sorted(archive.namelist()):
            parts = Path(name).parts
            if len(parts) != 4 or name.endswith("/"):
                continue
            _, split, label, _ = parts
            if taken.get((split, label), 0) >= keep[split]:
                continue
            taken[(split, label)] = taken.get((split, label), 0) + 1
            target = out / split / label / parts[-1]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))
    return out


def solid_jpeg(path: Path, colour: tuple[int, int, int], size=(64, 48), noise_seed=0) -> Path:
    """A JPEG of one colour with a little noise, so that no two files are identical."""
    rng = np.random.default_rng(noise_seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 12, (size[1], size[0], 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels.astype(np.uint8)).save(path, "JPEG", quality=90)
    return path


def grey_card(folder: Path) -> Path:
    """A plain grey 400 x 300 photo: nothing any model was taught, so "not recognised"."""
    path = folder / "grey card.jpg"
    Image.fromarray(np.full((300, 400, 3), 128, np.uint8)).save(path)
    return path


def jpeg_bytes(image: Image.Image, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **kwargs)
    return buffer.getvalue()


def starter_variant(folder: Path, version: str, edit=None) -> Path:
    """The starter bundle under another version, its manifest changed by ``edit(manifest)``."""
    import json

    shutil.copytree(STARTER, folder, ignore=shutil.ignore_patterns("evaluation", "*.png"))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["version"] = version
    if edit:
        edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@contextlib.contextmanager
def small_disk(folder: Path, size: str):
    """A file system of ``size`` (tmpfs) mounted at ``folder``: a disk that fills up for real.
    Mounting needs root, as `make test`'s Chromium install does; without it the test fails
    rather than skips, so that CI cannot pass without trying a full disk."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True, text=True,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.fail(f"a small disk cannot be mounted here (needs root): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def fill_disk(folder: Path, leave: int) -> Path:
    """A file that takes all of ``folder``'s disk but ``leave`` bytes."""
    filler = folder / "filler"
    filler.write_bytes(b"\0" * max(0, shutil.disk_usage(folder).free - leave))
    return filler


@pytest.fixture
def copy_tree():
    def copy(src: Path, dst: Path) -> Path:
        shutil.copytree(src, dst)
        return dst

    return copy


def binbot(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `binbot` command (as `python -m binbot`) and capture what it prints."""
    return subprocess.run(
        [sys.executable, "-m", "binbot", *args],
        capture_output=True,
        text=True,
        env=env or os.environ.copy(),
        cwd=cwd,
        timeout=900,
    )


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, small_ewaste, imagenet_weights) -> Path:
    """`binbot train` on 8 images per class: the head (on cached features, seconds), then one
    fine-tuning epoch."""
    out = tmp_path_factory.mktemp("runs") / "small run"
    result = binbot(
        "train", str(small_ewaste), "--out", str(out),
        "--head-epochs", "20", "--fine-tune-epochs", "1", "--fine-tune-layers", "10",
        "--batch-size", "16",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "head      epoch 20/20" in result.stdout
    assert "fine-tune epoch  1/1" in result.stdout
    assert "Test accuracy" in result.stdout
    return out


@pytest.fixture(scope="session")
def small_bundle(trained_run, small_ewaste, tmp_path_factory) -> Path:
    """The small run converted as a user types it, version small-1, in a folder of their own
    with paths relative to it (the TF.js check, which runs in the project's folder, once failed
    to find `run/openset.json`). Tests copy it before changing it.

    float32 because this barely trained model is full of near-ties, which uint8 flips often
    enough to fail conversion's own 98% agreement bar (measured: 97.67% on the 300 test
    images). The shipped uint8 starter model is what most browser tests run, and
    `make bench-browser` measures its agreement with Keras in this browser.
    """
    out = tmp_path_factory.mktemp("bundles") / "small-1"
    result = binbot("convert", os.path.relpath(trained_run, out.parent), "--out", "small-1",
                    "--quantize", "none", "--version", "small-1",
                    "--dataset", os.path.relpath(small_ewaste, out.parent),
                    cwd=out.parent)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "agreement 100.00%" in result.stdout
    return out


@dataclass
class Live:
    url: str
    app: object
    data: Path

    def submissions(self) -> int:
        from server.extensions import db
        from server.tables import Submission

        with self.app.app_context():
            return db.session.query(Submission).count()

    def stored_files(self) -> list[Path]:
        folder = self.data / "submissions"
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """A fresh, empty database per test: a SQLite file, or a new PostgreSQL database.

    PostgreSQL comes from scripts/with-postgres (run by `make test`), which sets
    BINBOT_TEST_POSTGRES_URL; under CI its absence is a failure, not a skip.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'binbot.sqlite3'}"
        return
    with fresh_postgres_database("binbot_test") as url:
        yield url


@contextlib.contextmanager
def fresh_postgres_database(prefix: str):
    """Create an empty database on the test PostgreSQL server, yield its URL, drop it after.

    The server comes from scripts/with-postgres (run by `make test`), which sets
    BINBOT_TEST_POSTGRES_URL; under CI its absence is a failure, not a skip.
    """
    admin_url = os.environ.get("BINBOT_TEST_POSTGRES_URL")
    if not admin_url:
        if os.environ.get("CI"):
            pytest.fail("BINBOT_TEST_POSTGRES_URL is not set: run the tests with `make test`")
        pytest.skip("no PostgreSQL server; `make test` starts one")
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin_dsn = admin_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _postgres_admin():
    import psycopg

    return psycopg.connect(
        os.environ["BINBOT_TEST_POSTGRES_URL"].replace("+psycopg", ""), autocommit=True
    )


def cut_connections(url: str) -> None:
    """End every open connection to the PostgreSQL database of ``url``, as a restart does."""
    with _postgres_admin() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (url.rsplit("/", 1)[1],),
        )


@contextlib.contextmanager
def database_down(url: str):
    """The PostgreSQL database of ``url`` away: its connections cut, new ones refused, until
    the block ends."""
    name = url.rsplit("/", 1)[1]
    with _postgres_admin() as admin:
        admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        cut_connections(url)
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.fixture
def live(tmp_path, database_url):
    """A real HTTP server on a loopback port over a fresh app, database and data folder."""
    yield from serve_live(tmp_path, database_url)


@pytest.fixture
def live_behind_front(tmp_path, database_url):
    """The same, trusting X-Forwarded-For from one proxy, as it does behind the front."""
    yield from serve_live(tmp_path, database_url, BINBOT_PROXIES=1)


def serve_live(tmp_path, database_url, **config):
    from werkzeug.serving import make_server

    from server import create_app
    from server.extensions import db
    from server.provision import provision

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": database_url,
            "BINBOT_DATA_DIR": str(tmp_path / "data"),
            "MAX_CONTENT_LENGTH": 3 * 1024 * 1024,
            "BINBOT_MAX_IMAGE_PIXELS": 6_000_000,
            **config,
        }
    )
    provision(app, log=lambda _: None)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Live(f"http://127.0.0.1:{server.server_port}", app, tmp_path / "data")
    server.shutdown()
    thread.join(timeout=5)
    with app.app_context():
        db.engine.dispose()


def submit(live: Live, image: bytes, *, label="Battery", key=None, name="photo.jpg", **form):
    headers = {"Idempotency-Key": key} if key else {}
    return requests.post(
        f"{live.url}/api/submissions",
        files={"image": (name, image, "image/jpeg")},
        data={"label": label, **form},
        headers=headers,
        timeout=30,
    )


def console_session(live) -> tuple[dict, str]:
    """A logged-in console session's cookie jar and its CSRF token."""
    from server.admin.tokens import create_admin_token

    with live.app.app_context():
        token = create_admin_token()
    login = requests.post(f"{live.url}/admin/login", data={"token": token}, timeout=30,
                          allow_redirects=False)  # fmt: skip
    jar = {"binbot_admin": login.cookies["binbot_admin"]}  # Secure: passed by hand over http
    page = requests.get(f"{live.url}/admin/kinds", cookies=jar, timeout=30).text
    return jar, re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


@pytest.fixture(scope="session")
def webclient_dist() -> Path:
    """The web client built from the current source (npm run build), once per session."""
    from browser import build_webclient

    return build_webclient()


@pytest.fixture
def server(tmp_path, webclient_dist):
    """The web tier (gunicorn) on a fresh SQLite instance, the starter model published."""
    from browser import AppServer

    app_server = AppServer(tmp_path / "instance").start()
    yield app_server
    app_server.stop()


@pytest.fixture(scope="session")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright, webclient_dist):
    """Debian's Chromium, headless (tests open their own pages and contexts)."""
    from browser import TestBrowser, launch_options

    chromium = TestBrowser(playwright.chromium.launch(**launch_options()))
    yield chromium
    chromium.close()


def at_once(count: int, request) -> list:
    """``request()`` from ``count`` threads released together, as by a double click or two
    admins at the same moment; the answers in the order sent."""
    barrier = threading.Barrier(count)

    def send_when_all_ready(i):
        barrier.wait()
        return request(i)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(send_when_all_ready, range(count)))
