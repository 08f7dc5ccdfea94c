"""The production stack as it runs on the internet: `binbot serve --front` (nginx with HTTPS
before gunicorn's threaded workers), two retraining workers, PostgreSQL; attacked and used.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from browser import PHONE, TestBrowser, free_port, launch_options, wait_until_ready
from conftest import fresh_postgres_database

pytestmark = pytest.mark.slow


class FrontStack:
    """`binbot serve --front` in a subprocess; its output collected as it comes."""

    def __init__(
        self, instance: Path, database_url: str, host: str = "127.0.0.1", **extra_env: str
    ) -> None:
        self.http, self.https = free_port(), free_port()
        self.env = os.environ | {
            "BINBOT_INSTANCE_DIR": str(instance), "DATABASE_URL": database_url, **extra_env,
        }  # fmt: skip
        self.process = subprocess.Popen(
            [sys.executable, "-m", "binbot", "serve", "--front", "--host", host,
             "--port", str(self.http), "--https-port", str(self.https), "--workers", "2",
             "--retrain-workers", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env,
        )  # fmt: skip
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.ca = instance / "front" / "tls" / "ca.crt"
        self.host = f"[{host}]" if ":" in host else host
        self.url = f"https://{self.host}:{self.https}"
        self.wait_for("waiting for retraining jobs", count=2)
        deadline = time.monotonic() + 60
        while not self._answers():
            assert time.monotonic() < deadline and self.process.poll() is None, self.output

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def _answers(self) -> bool:
        try:
            return self.get("/api/models/current").ok
        except (requests.ConnectionError, requests.Timeout):  # not up, or still starting
            time.sleep(0.3)
            return False

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, count: int = 1, seconds: float = 120) -> None:
        deadline = time.monotonic() + seconds
        while self.output.count(text) < count:
            assert self.process.poll() is None, self.output[-3000:]
            assert time.monotonic() < deadline, f"{text!r} x{count} not in: {self.output[-3000:]}"
            time.sleep(0.2)

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, verify=str(self.ca), timeout=30, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return requests.post(self.url + path, verify=str(self.ca), timeout=30, **kwargs)

    def token(self) -> str:
        return next(line.split()[-1] for line in self.lines if "Admin token" in line)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=120)


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database (scripts/with-postgres runs the server)."""
    with fresh_postgres_database("binbot_front") as url:
        yield url


@pytest.fixture
def stack(tmp_path, postgres_url, small_ewaste, webclient_dist):
    running = FrontStack(
        tmp_path / "instance", postgres_url, BINBOT_BASE_DATASET=str(small_ewaste),
        BINBOT_UPLOADS_PER_MINUTE="5",
    )  # fmt: skip
    yield running
    running.stop()


def trickle(port: int, count: int, stop: threading.Event) -> list[socket.socket]:
    """``count`` TLS connections that send an upload's headers, then a byte now and then."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # an attacker's client
    sockets = []
    for _ in range(count):
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        conn = context.wrap_socket(raw, server_hostname="localhost")
        conn.sendall(b"POST /api/submissions HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: multipart/form-data; boundary=x\r\n"
                     b"Content-Length: 1000000\r\n\r\n--x\r\n")  # fmt: skip
        sockets.append(conn)

    def drip() -> None:
        while not stop.wait(1.0):
            for conn in sockets:
                with contextlib.suppress(OSError):  # nginx may have hung up on it: fine
                    conn.sendall(b"a")

    threading.Thread(target=drip, daemon=True).start()
    return sockets


def slowest_answer(get, times: int = 10) -> float:
    slowest = 0.0
    for _ in range(times):
        started = time.monotonic()
        assert get().status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.2)
    return slowest


def test_fifty_trickling_uploads_do_not_slow_the_model_check_through_the_front(stack):
    stop = threading.Event()
    sockets = trickle(stack.https, 50, stop)
    try:
        time.sleep(2)  # they are all connected and dripping
        assert slowest_answer(lambda: stack.get("/api/models/current")) < 1.0
    finally:
        stop.set()
        for conn in sockets:
            conn.close()


def test_the_front_limits_compresses_caches_and_answers_errors_in_json(stack, photo):
    def upload(key: str, headers: dict | None = None) -> requests.Response:
        return stack.post("/api/submissions", files={"image": ("p.jpg", photo, "image/jpeg")},
                          data={"label": "Battery"},
                          headers={"Idempotency-Key": key, **(headers or {})})  # fmt: skip

    # Per client, however it names itself: the front sets the address the app sees.
    answers = [upload(f"k{i}", {"X-Forwarded-For": f"10.0.0.{i}"}) for i in range(7)]
    assert [a.status_code for a in answers[:5]] == [201, 200, 200, 200, 200]
    assert {a.status_code for a in answers[5:]} == {429}
    assert int(answers[-1].headers["Retry-After"]) > 0
    # Too large for the front: refused there, in JSON, before it reaches the app.
    huge = stack.post("/api/submissions", data=b"x" * (11 * 1024 * 1024),
                      headers={"Content-Type": "application/octet-stream"})  # fmt: skip
    assert huge.status_code == 413 and huge.json()["error"].startswith("request too large")
    too_long = stack.get("/api/labels", headers={"X-Filler": "x" * 20_000})
    assert too_long.status_code == 431 and too_long.json()["error"] == "request header too large"
    too_long = stack.get("/api/labels?" + "q" * 20_000)
    assert too_long.status_code == 414 and too_long.json()["status"] == 414
    # Text, JavaScript and wasm are compressed; model files keep their immutable caching.
    for path in ("/app.js", "/tfjs/tfjs-backend-wasm-simd.wasm", "/api/models/current"):
        answer = stack.get(path, headers={"Accept-Encoding": "gzip"}, stream=True)
        assert answer.headers.get("Content-Encoding") == "gzip", path
    current = stack.get("/api/models/current").json()
    shard = stack.get(current["files"][1]["url"])
    assert "immutable" in shard.headers["Cache-Control"]
    assert shard.headers["Strict-Transport-Security"].startswith("max-age=")
    plain = requests.get(f"http://127.0.0.1:{stack.http}/", allow_redirects=False, timeout=10)
    assert plain.status_code == 301 and plain.headers["Location"].startswith("https://")


def test_a_killed_worker_is_restarted_and_two_workers_share_the_queue(stack):
    auth = {"Authorization": f"Bearer {stack.token()}"}
    jobs = [stack.post("/api/admin/jobs", json={"settings": {"head_epochs": 200}},
                       headers=auth).json()["job"]["id"] for _ in range(2)]  # fmt: skip
    deadline = time.monotonic() + 180
    while True:
        states = [stack.get(f"/api/admin/jobs/{j}", headers=auth).json()["job"] for j in jobs]
        if all(s["status"] == "running" for s in states):
            break
        assert time.monotonic() < deadline, states
        time.sleep(0.5)
    assert states[0]["worker"] != states[1]["worker"]  # each worker took one
    os.kill(int(states[0]["worker"].rsplit(":", 1)[1]), signal.SIGKILL)
    while (first := stack.get(f"/api/admin/jobs/{jobs[0]}", headers=auth).json()["job"])[
        "status"
    ] == "running":
        assert stack.get("/api/models/current").status_code == 200  # the web keeps serving
        time.sleep(0.3)
    assert first["error"] == "the retraining worker killed by signal SIGKILL"
    stack.wait_for(f"during job {jobs[0]} (marked failed)")
    [crash] = [line for line in stack.lines if f"during job {jobs[0]} (" in line]
    killed = re.search(r"retraining worker \d+", crash)[0]  # whichever of the two took job 1
    stack.wait_for(f"starting {killed} again")
    second = stack.get(f"/api/admin/jobs/{jobs[1]}", headers=auth).json()["job"]
    assert second["status"] == "running"  # the other worker goes on
    stack.post(f"/api/admin/jobs/{jobs[1]}/cancel", headers=auth)


def spki_pin(certificate: Path) -> str:
    """What Chromium's --ignore-certificate-errors-spki-list takes: base64 sha256 of the key."""
    key = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(certificate)],
                         capture_output=True, check=True).stdout  # fmt: skip
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=key,
                         capture_output=True, check=True).stdout  # fmt: skip
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der,
                            capture_output=True, check=True).stdout  # fmt: skip
    return base64.b64encode(digest).decode()


def test_a_phone_classifies_and_sends_a_correction_over_https(playwright, stack, small_ewaste):
    """The phone trusts the local certificate (as after installing the CA on a real phone),
    so the service worker and the camera's secure context work as on the LAN."""
    options = launch_options()
    pin = spki_pin(stack.ca.parent / "server.crt")
    options["args"] = [*options["args"], f"--ignore-certificate-errors-spki-list={pin}"]
    browser = TestBrowser(playwright.chromium.launch(**options))
    try:
        page = browser.new_page(viewport=PHONE)
        page.goto(stack.url + "/")
        wait_until_ready(page)
        photo = next((small_ewaste / "test" / "Printer").iterdir())
        page.set_input_files("#gallery-input", str(photo))
        page.wait_for_selector("#result:not([hidden])", timeout=60_000)
        if page.locator("#wrong-button").is_visible():
            page.get_by_role("button", name="No, that's wrong").click()
        page.get_by_label("What is it?").select_option("Printer")
        page.get_by_role("button", name="Send correction").click()
        page.wait_for_function("document.getElementById('feedback-message').textContent !== ''")
        page.wait_for_function("document.getElementById('queue-status').dataset.waiting === '0'")
        assert page.evaluate("location.protocol") == "https:"
        assert page.evaluate("window.isSecureContext && self.crossOriginIsolated")
    finally:
        browser.close()
    auth = {"Authorization": f"Bearer {stack.token()}"}
    stored = stack.get("/api/admin/submissions", headers=auth).json()["submissions"]
    assert [s["label"] for s in stored] == ["Printer"]


def test_the_front_listens_only_on_the_address_asked_for_ipv6_too(tmp_path, webclient_dist):
    """`--host ::1`: nginx listened on every IPv4 address whatever --host said."""
    database = f"sqlite:///{tmp_path / 'binbot.sqlite3'}"
    front = FrontStack(tmp_path / "instance", database, host="::1")
    try:
        assert f"Serving on https://[::1]:{front.https}/" in front.output
        assert "[warn]" not in front.output  # nginx warned of a duplicate type at every start
        # The local certificate names the address, so a phone that trusts the CA can open it.
        assert front.get("/api/models/current").json()["version"]
        redirect = requests.get(
            f"http://[::1]:{front.http}/admin", allow_redirects=False, timeout=30
        )
        assert redirect.headers["Location"] == f"https://[::1]:{front.https}/admin"
        for port in (front.http, front.https):
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        front.stop()


def test_two_trickling_uploads_do_not_stop_the_embedded_server(tmp_path):
    """Without the front (`make run`): gunicorn's threads keep answering."""
    port = free_port()
    env = os.environ | {"BINBOT_INSTANCE_DIR": str(tmp_path / "instance")}
    env.pop("DATABASE_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "binbot", "serve", "--port", str(port)], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/api/models/current"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if requests.get(url, timeout=5).ok:
                    break
            except (requests.ConnectionError, requests.Timeout):
                assert time.monotonic() < deadline
                time.sleep(0.3)
        sockets = []
        for _ in range(2):
            conn = socket.create_connection(("127.0.0.1", port), timeout=10)
            conn.sendall(b"POST /api/submissions HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Length: 1000000\r\n\r\nab")  # fmt: skip
            sockets.append(conn)
        time.sleep(1)
        assert slowest_answer(lambda: requests.get(url, timeout=5)) < 1.0
        for conn in sockets:
            conn.close()
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)
