"""`binbot serve` (what `make run` starts): a real gunicorn, the token printed once, Ctrl-C stops it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(instance, port):
    env = os.environ | {"BINBOT_INSTANCE_DIR": str(instance)}
    env.pop("DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "binbot", "serve", "--port", str(port), "--workers", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )  # fmt: skip


def wait_until_up(url: str, process, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            requests.get(url, timeout=2)
            return
        except requests.ConnectionError:
            time.sleep(0.3)
    raise AssertionError("server did not come up")


def stop(process) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=30)
    return output


def test_serve_publishes_starter_prints_token_once_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start(tmp_path / "instance", port)
    try:
        wait_until_up(f"{url}/api/labels", process)
        current = requests.get(f"{url}/api/models/current", timeout=10).json()
        assert current["version"] == "starter-1"
    finally:
        output = stop(process)
    assert process.returncode == 0, output
    token = next(line.split()[-1] for line in output.splitlines() if "Admin token" in line)

    # A second start keeps the database and the token, and does not print it again.
    process = start(tmp_path / "instance", port)
    try:
        wait_until_up(f"{url}/api/labels", process)
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.get(f"{url}/api/admin/models", headers=auth, timeout=10).status_code == 200
    finally:
        output = stop(process)
    assert "Admin token (shown once" not in output
    assert "An admin token exists" in output
