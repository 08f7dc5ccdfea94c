"""Real-browser helpers: Debian's Chromium driven by Playwright, and a gunicorn server we can
stop and start again on the same port (same origin, so the browser keeps its caches).

Tests import these; fixtures live in the test modules that use them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

PROJECT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("BINBOT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 800}
LAPTOP = {"width": 1366, "height": 768}
ARTIFACTS = Path(os.environ.get("BINBOT_TEST_ARTIFACTS") or PROJECT / "artifacts" / "tests")


def build_webclient() -> Path:
    """`npm run build`, so the tests always exercise the current source: once per test run.

    Under pytest-xdist every worker asks; the build empties dist/ first, so a second one would
    pull files from under the first worker's servers. The first worker builds, under a lock,
    and leaves the run's id beside dist/ for the others."""
    dist = PROJECT / "webclient" / "dist"
    this_run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    stamp = PROJECT / "webclient" / ".built-for-test-run"
    with (PROJECT / "webclient" / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if this_run and stamp.exists() and stamp.read_text() == this_run:
            return dist
        stamp.unlink(missing_ok=True)
        result = subprocess.run(
            ["npm", "run", "--silent", "build"], cwd=PROJECT, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
        if this_run:
            stamp.write_text(this_run)
    return dist


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class AppServer:
    """The real stack's web tier: gunicorn over `server:create_app()`, configured by env."""

    instance: Path
    port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    provisioned: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        return self.instance / "gunicorn.log"

    @property
    def config(self) -> dict[str, str]:
        return {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{self.instance / 'binbot.sqlite3'}",
            "BINBOT_DATA_DIR": str(self.instance / "data"),
        }

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "BINBOT_INSTANCE_DIR": str(self.instance),
            "DATABASE_URL": self.config["SQLALCHEMY_DATABASE_URI"],
            "BINBOT_DATA_DIR": self.config["BINBOT_DATA_DIR"],
            **self.extra_env,
        }

    def provision(self) -> None:
        """What `binbot serve` does before it starts gunicorn: schema and starter model."""
        done = subprocess.run(
            [sys.executable, "-m", "binbot", "db", "upgrade"], env=self.env, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        self.provisioned = True

    def start(self) -> AppServer:
        if not self.provisioned:
            self.provision()
        env = self.env
        gunicorn = shutil.which("gunicorn", path=os.path.dirname(sys.executable)) or "gunicorn"
        # Its log goes to a file: a pipe nobody reads fills after 64 kB (a test that logs many
        # errors) and then blocks the server mid-request.
        self.instance.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [gunicorn, "--workers", "1", "--threads", "4", "--bind", f"127.0.0.1:{self.port}",
                 "--worker-class", "server.gunicorn_worker.JsonErrorThreadWorker",
                 "--graceful-timeout", "2", "server:create_app()"],
                cwd=PROJECT, env=env, stdout=subprocess.DEVNULL, stderr=log,
            )  # fmt: skip
        try:
            self._wait_until_answering()
        except BaseException:
            self.stop()  # a failed start left gunicorn running after the test run had ended
            raise
        return self

    def _wait_until_answering(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = self.log_path.read_text(errors="replace")
                raise RuntimeError(f"gunicorn exited: {log[-2000:]}")
            try:
                if requests.get(self.url + "api/models/current", timeout=5).ok:
                    return
            except (requests.ConnectionError, requests.Timeout):
                # Not listening yet, or its worker still starting: on a busy 2-core machine
                # the first answer once took over 2 s, and the setup failed instead of waiting.
                time.sleep(0.2)
        raise RuntimeError(f"gunicorn did not answer within {seconds:.0f} s")

    def admin_token(self) -> str:
        """A new admin token in this server's database, as `binbot serve` prints one."""
        from server import create_app
        from server.admin.tokens import create_admin_token
        from server.extensions import db

        app = create_app(self.config)
        with app.app_context():
            token = create_admin_token()
            db.engine.dispose()
        return token

    def stop(self) -> None:
        """Stop the server: every connection closes, as when a phone loses its network."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


# Test contexts let Playwright evaluate scripts despite the app's Content-Security-Policy
# (its string expressions would count as eval). test_security.py checks the app without this.
CONTEXT_OPTIONS = {"bypass_csp": True}


class TestBrowser:
    """A launched Chromium whose new contexts and pages take CONTEXT_OPTIONS by default."""

    __test__ = False  # a helper, not a test class (its name starts with "Test")

    def __init__(self, browser) -> None:
        self.browser = browser

    def new_context(self, **options):
        return self.browser.new_context(**{**CONTEXT_OPTIONS, **options})

    def new_page(self, **options):
        return self.browser.new_page(**{**CONTEXT_OPTIONS, **options})

    def close(self) -> None:
        self.browser.close()


def launch_options() -> dict:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(
            f"{CHROMIUM} is missing: `make test` installs it (scripts/ensure-chromium)"
        )
    return {"executable_path": CHROMIUM, "args": CHROMIUM_FLAGS}


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_until_ready(page, timeout_ms: int = 60_000) -> None:
    """The app has a model loaded and its service worker controls the page."""
    page.wait_for_function(
        "window.binbot && window.binbot.state.entry && navigator.serviceWorker.controller",
        timeout=timeout_ms,
    )


def classify_in_page(page, images: list[bytes]) -> list[dict]:
    """Run the app's own classifier (worker, wasm) on JPEG bytes; returns its results."""
    import base64

    payload = [base64.b64encode(b).decode() for b in images]
    return page.evaluate(
        """async (images) => {
            const out = [];
            for (const text of images) {
                const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
                const r = await window.binbot.classify(new Blob([bytes], { type: 'image/jpeg' }));
                out.push({ version: r.version, top: r.ranked[0].label, probabilities: r.probabilities,
                           verdict: r.verdict, timings: r.timings, width: r.width, height: r.height });
            }
            return out;
        }""",
        payload,
    )


def choose_photo(page, path: Path) -> None:
    """Pick a photo through the gallery input, as a user does, and wait for the verdict."""
    page.evaluate("document.getElementById('result').hidden = true")
    page.set_input_files("#gallery-input", str(path))
    page.wait_for_selector("#result:not([hidden])", timeout=60_000)


class Stack:
    """gunicorn + one retraining worker over one SQLite database and data folder."""

    def __init__(self, instance: Path, env: dict[str, str]) -> None:
        self.web = AppServer(instance, extra_env=env)
        self.env = self.web.env
        self.worker: subprocess.Popen | None = None

    def start(self) -> Stack:
        self.web.start()
        self.worker = subprocess.Popen([sys.executable, "-m", "binbot", "worker"], env=self.env)
        return self

    def stop(self) -> None:
        if self.worker:
            self.worker.terminate()
            self.worker.wait(timeout=30)
        self.web.stop()

    def admin_token(self) -> str:
        return self.web.admin_token()


def publish_bundle(server: AppServer, bundle: Path) -> str:
    """What an admin's publish does: register the bundle and make it the live version."""
    from server import create_app
    from server.extensions import db
    from server.registry.bundles import publish, register_bundle

    app = create_app(server.config)
    with app.app_context():
        version = register_bundle(bundle).version
        publish(version, force=True, reason="browser test")
        db.engine.dispose()
    return version
