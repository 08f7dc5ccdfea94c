"""`binbot serve` (what `make run` starts): a real gunicorn, the token printed once, Ctrl-C stops it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import STARTER_VERSION, binbot, database_down, fresh_postgres_database


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sqlite_instance(tmp_path: Path) -> dict[str, str]:
    """The environment of a BinBot on its own SQLite instance under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return env | {"BINBOT_INSTANCE_DIR": str(tmp_path / "instance")}


class Server:
    """`binbot serve` in a subprocess, its output collected line by line as it comes."""

    def __init__(self, instance, port, *options: str, unset=(), cwd=None, **extra_env):
        # SQLite, unless DATABASE_URL is given; ``unset``: variables the server must not have.
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", *unset)}
        env |= {"BINBOT_INSTANCE_DIR": str(instance), **extra_env}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "binbot", "serve", "--port", str(port), "--workers", "2",
             *options],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd,
        )  # fmt: skip
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.output:
            assert self.process.poll() is None, self.output
            assert time.monotonic() < deadline, f"no {text!r} in: {self.output}"
            time.sleep(0.2)

    def wait_for_count(self, text: str, count: int, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while self.output.count(text) < count:
            assert time.monotonic() < deadline, f"{text!r} not {count} times in: {self.output}"
            time.sleep(0.2)

    def stop(self, how: signal.Signals = signal.SIGINT) -> str:
        self.process.send_signal(how)
        self.process.wait(timeout=120)
        self.reader.join(timeout=10)
        return self.output


def test_serve_publishes_starter_prints_token_once_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Server(tmp_path / "instance", port)
    try:
        server.wait_for("Listening at")
        server.wait_for("waiting for retraining jobs")  # the worker runs beside gunicorn
        current = requests.get(f"{url}/api/models/current", timeout=10).json()
        assert current["version"] == STARTER_VERSION
        page = requests.get(f"{url}/", timeout=10)  # the web app, at the site root
        assert page.ok and "BinBot" in page.text and "app.js" in page.text
        # What gunicorn refuses before the app sees it is answered in the app's JSON, too.
        too_big = requests.get(f"{url}/api/labels", headers={"X-Filler": "x" * 10_000}, timeout=10)
        assert too_big.status_code == 431
        assert too_big.json()["status"] == 431 and "header" in too_big.json()["error"].lower()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(b"GET /api/labels HTTP/9.9\r\nHost: x\r\n\r\n")
            answer = raw.makefile("rb").read().decode("latin1")
        head, _, body = answer.partition("\r\n\r\n")
        assert head.startswith("HTTP/1.1 400") and "application/json" in head
        assert json.loads(body)["status"] == 400
    finally:
        output = server.stop()
    assert server.process.returncode == 0, output
    assert "worker stopped" in output
    assert "can be reached from other machines" not in output  # 127.0.0.1: this machine only
    token = next(line.split()[-1] for line in output.splitlines() if "Admin token" in line)

    # A second start keeps the database and the token, and does not print it again.
    server = Server(tmp_path / "instance", port)
    try:
        server.wait_for("Listening at")
        auth = {"Authorization": f"Bearer {token}"}
        assert requests.get(f"{url}/api/admin/models", headers=auth, timeout=10).status_code == 200
    finally:
        output = server.stop(signal.SIGTERM)  # as systemd or `docker stop` would
    assert server.process.returncode == 0, output
    with pytest.raises(requests.ConnectionError):  # gunicorn went with it: nothing left behind
        requests.get(f"{url}/api/models/current", timeout=5)
    assert "Admin token (shown once" not in output
    assert "An admin token exists" in output
    env = os.environ | {"BINBOT_INSTANCE_DIR": str(tmp_path / "instance")}
    env.pop("DATABASE_URL", None)
    [listed] = binbot("token", "list", env=env).stdout.strip().splitlines()
    assert "last used never" not in listed and listed.endswith("binbot serve, first start")


def test_serve_takes_folders_relative_to_where_it_is_started(tmp_path, photo):
    """`BINBOT_INSTANCE_DIR=instance binbot serve`, as a user types it: the database, the
    published model and the photos people send all land in ./instance (the start used to fail
    with 'unable to open database file')."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Server("instance", port, cwd=tmp_path)
    try:
        server.wait_for("Listening at")
        current = requests.get(f"{url}/api/models/current", timeout=10).json()
        model = requests.get(f"{url}{current['files'][0]['url']}", timeout=10)
        assert model.ok and model.content
        sent = requests.post(f"{url}/api/submissions", data={"label": "Battery"}, timeout=30,
                             files={"image": ("p.jpg", photo)})  # fmt: skip
        assert sent.status_code == 201, sent.text
    finally:
        output = server.stop()
    assert server.process.returncode == 0, output
    instance = tmp_path / "instance"
    assert (instance / "binbot.sqlite3").is_file()
    assert len(list((instance / "data" / "submissions").rglob("*.jpg"))) == 1
    assert (instance / "data" / "models" / current["version"] / "model.json").is_file()


def test_serve_listens_on_an_ipv6_address_and_there_only(tmp_path):
    """`--host ::1` failed after everything was set up (gunicorn read ':::8000' as no port),
    and `--host [::1]` was not an address."""
    port = free_port()
    server = Server(tmp_path / "instance", port, "--host", "[::1]")
    try:
        server.wait_for("Listening at")
        assert f"Serving on http://[::1]:{port}/" in server.output
        current = requests.get(f"http://[::1]:{port}/api/models/current", timeout=10)
        assert current.json()["version"] == STARTER_VERSION
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        output = server.stop()
    assert server.process.returncode == 0, output


def test_a_killed_retraining_worker_is_restarted_and_the_web_service_keeps_serving(
    tmp_path, small_ewaste
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Started by hand, not by the Makefile (which sets TF_CPP_MIN_LOG_LEVEL): the log must
    # still be free of TensorFlow's start-up noise, which reads like faults of the server.
    server = Server(tmp_path / "instance", port, BINBOT_BASE_DATASET=str(small_ewaste),
                    unset=("TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES"))  # fmt: skip
    try:
        server.wait_for("waiting for retraining jobs")
        token = next(line.split()[-1] for line in server.lines if "Admin token" in line)
        auth = {"Authorization": f"Bearer {token}"}
        job = requests.post(f"{url}/api/admin/jobs", json={"settings": {"head_epochs": 100}},
                            headers=auth, timeout=10).json()["job"]  # fmt: skip
        deadline = time.monotonic() + 120
        scratch = tmp_path / "instance" / "data" / "work" / f"job-{job['id']}"
        # The job is running, has written its folder and set TensorFlow up (the model built).
        server.wait_for(f"[job {job['id']}] Features below", seconds=120)
        assert (scratch / "dataset").is_dir()
        noise = [line for line in server.lines
                 if re.search(r"cuda|cuInit|cuDNN|oneDNN|^[EWI]0000 |absl::", line)]  # fmt: skip
        assert noise == [], server.output
        state = requests.get(f"{url}/api/admin/jobs/{job['id']}", headers=auth, timeout=10)
        state = state.json()["job"]
        assert state["status"] == "running", state
        os.kill(int(state["worker"].rsplit(":", 1)[1]), signal.SIGKILL)  # as the OOM killer would

        while (state := requests.get(f"{url}/api/admin/jobs/{job['id']}", headers=auth,
                                     timeout=10).json()["job"])["status"] == "running":  # fmt: skip
            assert time.monotonic() < deadline + 60, state
            assert requests.get(f"{url}/api/models/current", timeout=10).status_code == 200
            time.sleep(0.5)
        assert state["status"] == "failed"
        assert state["error"] == "the retraining worker killed by signal SIGKILL"
        server.wait_for("starting retraining worker 1 again")
        server.wait_for_count("waiting for retraining jobs", 2)
        # The killed job's scratch folder (its run, bundles, links) is removed by the new worker.
        server.wait_for(f"job {job['id']}: removed the scratch folder its worker left behind")
        assert not scratch.exists()
        assert requests.get(f"{url}/api/models/current", timeout=10).status_code == 200
        session = requests.post(f"{url}/admin/login", data={"token": token}, timeout=10,
                                allow_redirects=False).cookies["binbot_admin"]  # fmt: skip
        page = requests.get(f"{url}/admin/training", cookies={"binbot_admin": session}, timeout=10)
        assert "killed by signal SIGKILL (job 1 failed)" in page.text
    finally:
        server.stop()


def test_a_worker_dying_while_the_database_is_away_does_not_stop_the_service(tmp_path):
    """Marking the dead worker's jobs failed needs the database: with it away, the supervisor
    stopped on the driver's error, and took gunicorn and nginx with it."""
    with fresh_postgres_database("binbot_supervised") as database:
        port = free_port()
        server = Server(tmp_path / "instance", port, DATABASE_URL=database)
        try:
            server.wait_for("waiting for retraining jobs")
            worker = next(int(line.split()[1].rsplit(":", 1)[1]) for line in server.lines
                          if "waiting for retraining jobs" in line)  # fmt: skip
            with database_down(database):
                os.kill(worker, signal.SIGKILL)
                server.wait_for("retraining worker 1's job cannot be marked failed now")
            server.wait_for("starting retraining worker 1 again")
            server.wait_for_count("waiting for retraining jobs", 2)
            answer = requests.get(f"http://127.0.0.1:{port}/api/models/current", timeout=10)
            assert answer.status_code == 200 and server.process.poll() is None
        finally:
            output = server.stop()
        assert server.process.returncode == 0 and "Traceback" not in output, output


def _ended(pid: int) -> bool:
    """Gone, or a zombie waiting for whoever adopted it to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="parent-death signal is Linux's")
def test_a_supervisor_killed_outright_takes_gunicorn_and_the_worker_with_it(tmp_path):
    """`kill -9` (or the OOM killer) on `binbot serve` used to leave gunicorn answering on
    its port and the retraining worker claiming jobs, with nobody to stop them: the next
    start found its port in use. Both now end within seconds, and the port is free again."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = Server(tmp_path / "instance", port)
    try:
        server.wait_for("Listening at")
        server.wait_for("waiting for retraining jobs")
        assert requests.get(f"{url}/api/models/current", timeout=10).ok
        gunicorn = int(re.search(r"\[(\d+)\] \[INFO\] Starting gunicorn", server.output)[1])
        worker = int(re.search(r"Worker \S+:(\d+) waiting", server.output)[1])
        server.process.kill()
        server.process.wait(timeout=10)
        deadline = time.monotonic() + 60
        while not (_ended(gunicorn) and _ended(worker)):
            assert time.monotonic() < deadline, server.output
            time.sleep(0.2)
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/api/models/current", timeout=5)
    finally:
        if server.process.poll() is None:
            server.stop()


@pytest.mark.parametrize(
    ("written", "secure"), [("", True), ("1", True), ("false", False), ("Off", False), ("0", False)]
)
def test_secure_cookies_can_be_turned_off_in_plain_words(tmp_path, monkeypatch, written, secure):
    """Writing "false" or "off" kept the console's cookie Secure (only "0" turned it off), so on a
    plain-HTTP LAN the browser never sent it back and every login seemed to fail."""
    from server.config import load_config

    monkeypatch.setenv("BINBOT_SECURE_COOKIES", written)
    assert load_config(str(tmp_path))["SESSION_COOKIE_SECURE"] is secure


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"BINBOT_UPLOADS_PER_MINUTE": "thirty"}, "BINBOT_UPLOADS_PER_MINUTE must be a whole"),
        ({"BINBOT_JOB_TIMEOUT": "-5"}, "BINBOT_JOB_TIMEOUT must be at least 1"),
        ({"BINBOT_PUBLISH_MARGIN": "nan"}, "BINBOT_PUBLISH_MARGIN must be a number"),
        ({"BINBOT_SECURE_COOKIES": "maybe"}, "BINBOT_SECURE_COOKIES must be 1 or 0"),
        (
            {"DATABASE_URL": "mysql://bob@db/binbot"},
            "DATABASE_URL names a database BinBot cannot use: mysql",
        ),
        (
            {"DATABASE_URL": "postgresql+psycopg://bob:hunter2@127.0.0.1:1/binbot"},
            "cannot use the database postgresql+psycopg://bob:***@127.0.0.1:1/binbot: connection",
        ),
        ({"BINBOT_DATA_DIR": "{file}/data"}, "the data folder {file}/data cannot be written"),
    ],
)
def test_a_bad_setting_stops_the_start_with_one_clear_line(tmp_path, setting, message):
    """A typo in the environment, an unreachable database or a data folder that cannot be
    written: `binbot serve` says which, in one line (the password hidden), and exits 2
    before serving, instead of a traceback or a server whose first upload fails."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    setting = {name: value.format(file=a_file) for name, value in setting.items()}
    env = os.environ | {"BINBOT_INSTANCE_DIR": str(tmp_path / "instance"), **setting}
    if "DATABASE_URL" not in setting:
        env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "binbot", "serve", "--port", str(free_port())],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"binbot: error: {message.format(file=a_file)}"), result.stderr
    assert "hunter2" not in result.stdout + result.stderr


def test_a_port_in_use_stops_the_start_with_one_clear_line(tmp_path):
    """Another program on the port: `binbot serve` says so and exits 2, instead of letting
    gunicorn retry for seconds, log its own errors and leave nothing serving with exit 0."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = binbot("serve", "--port", str(port), env=sqlite_instance(tmp_path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"binbot: error: 127.0.0.1:{port} is in use (another BinBot, or another program): "
        "stop it, or choose another port with --port"
    )
    assert not (tmp_path / "instance").exists()  # nothing was set up for a server that cannot run


@pytest.mark.parametrize("host", ["*", "", "my server"])
def test_a_host_that_names_nothing_stops_the_start_with_one_clear_line(tmp_path, host):
    """`--host '*'` passed the address check (the resolver took it for loopback); gunicorn
    then retried for 5 s, failed, and the service stopped after everything was set up."""
    result = binbot(
        "serve", "--host", host, "--port", str(free_port()), env=sqlite_instance(tmp_path)
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip() == (
        f"binbot: error: --host {host!r} is not an address or a host name: every address is "
        "0.0.0.0 (IPv4) or :: (IPv6), this machine only 127.0.0.1"
    )
    assert not (tmp_path / "instance").exists()


def _secret_key_of(folder: str) -> str:
    from server.config import load_secret_key

    return load_secret_key(Path(folder))


def test_workers_starting_at_once_share_one_secret_key(tmp_path):
    """gunicorn's workers start together, and each reads (or makes) the instance's secret key.
    A worker that read it while another was still writing it got an empty key: its console
    sessions failed, or were not the others' (3 of 100 starts of 8 workers at once)."""
    import multiprocessing

    folders = [str(tmp_path / f"instance-{n}") for n in range(100)]
    with multiprocessing.get_context("fork").Pool(8) as pool:
        for folder in folders:
            keys = pool.map(_secret_key_of, [folder] * 8)
            assert len(set(keys)) == 1 and len(keys[0]) >= 32, folder
            assert (Path(folder) / "secret_key").stat().st_mode & 0o077 == 0  # owner only
            assert [p.name for p in Path(folder).iterdir()] == ["secret_key"]


@pytest.mark.parametrize(
    ("host", "front", "warned"),
    [
        ("127.0.0.1", False, False),
        ("localhost", False, False),
        ("::1", False, False),
        ("::ffff:127.0.0.1", False, False),  # loopback, IPv4-mapped: it was warned about
        ("0.0.0.0", False, True),  # every interface: other machines too
        ("::", False, True),
        ("0.0.0.0", True, False),  # nginx before gunicorn holds the slow clients
    ],
)
def test_gunicorn_facing_other_machines_without_the_front_is_warned_about(host, front, warned):
    """Slow clients hold gunicorn's threads (`make bench-slow`): whoever serves other machines
    without nginx before it is told so at start, and nobody serving only this machine is."""
    from server.serve import ServeOptions, exposure_warning

    warning = exposure_warning(ServeOptions(host=host, front=front))
    assert (warning is not None) == warned
    if warned:
        assert f"WARNING: {host} can be reached from other machines" in warning
        assert "of the 8 gunicorn threads" in warning and "serve with --front" in warning


def test_token_and_worker_commands_say_in_one_line_when_the_database_is_unusable(tmp_path):
    """They stopped with the driver's traceback (serve and db already said it in one line)."""
    env = os.environ | {"BINBOT_INSTANCE_DIR": str(tmp_path)}
    env.pop("DATABASE_URL", None)
    result = binbot("token", "list", env=env)  # a database nobody has set up yet
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"binbot: error: cannot use the database sqlite:///{tmp_path}/binbot.sqlite3: no such "
        "table: admin_token (a database BinBot has not set up: run `binbot db upgrade` first)"
    )
    env["DATABASE_URL"] = "postgresql+psycopg://someone:hunter2@127.0.0.1:1/binbot"
    for command in (["token", "list"], ["worker", "--once"]):
        result = binbot(*command, env=env)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(
            "binbot: error: cannot use the database postgresql+psycopg://someone:***@127.0.0.1:1"
            "/binbot: connection failed"
        ), line
        assert "hunter2" not in result.stdout + result.stderr


def test_admin_tokens_are_told_apart_by_their_note_and_last_use(live, database_url, tmp_path):
    """`binbot token list` showed a number and a date only: which of several tokens to revoke
    (a lost laptop's) was guesswork. Each now has a note and the time it was last used."""
    env = os.environ | {"DATABASE_URL": database_url, "BINBOT_INSTANCE_DIR": str(tmp_path / "i")}
    made = binbot("token", "new", "--note", "  Alice's   laptop ", env=env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip().rsplit(" ", 1)[-1]
    assert binbot("token", "new", env=env).returncode == 0  # a second one, never used
    answer = requests.get(f"{live.url}/api/admin/models", timeout=30,
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip
    assert answer.status_code == 200
    lines = binbot("token", "list", env=env).stdout.strip().splitlines()
    assert re.fullmatch(
        r" *\d+  created [\d-]+ [\d:]+ UTC  last used [\d-]+ [\d:]+ UTC  Alice's laptop", lines[-2]
    ), lines
    assert lines[-1].endswith("  last used never"), lines
    numbers = [line.split()[0] for line in lines]
    assert "No admin token is left" not in binbot("token", "revoke", numbers[0], env=env).stdout
    last = binbot("token", "revoke", numbers[1], env=env).stdout
    assert "No admin token is left: nobody can log in until `binbot token new`." in last
    refused = binbot("token", "new", "--note", "red\x1b[31m", env=env)
    assert refused.returncode == 2 and refused.stderr.strip() == (
        "binbot: error: a token's note cannot hold control or invisible format characters"
    )
