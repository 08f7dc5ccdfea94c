"""Slow clients: uploads that trickle in, against the bare server and against the front.

    python benchmarks/slow_clients.py

The slow-body form of Slowloris, from one machine: N connections to the upload endpoint each
send their headers and the first bytes of a body that declares 100 kB, then nothing more.
Meanwhile one ordinary client asks ``GET /api/ping`` once a second with a 3 s timeout. For
`binbot serve` (gunicorn's threaded workers, 2 processes x 4 threads: what `make run` starts)
and `binbot serve --front` (nginx before them, what faces the internet), each on a fresh
SQLite instance: the share of pings answered, their median time, and how many of the slow
connections the server closed by itself. Writes ``benchmarks/results/slow_clients.json``;
exits 1 when the front lets the slow connections keep an ordinary request from its answer.
Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import json
import select
import signal
import socket
import ssl
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from load_server import start_service  # noqa: E402

RESULTS = HERE / "results"
PING_TIMEOUT_S = 3
SLOW_REQUEST = (
    b"POST /api/submissions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: multipart/form-data; boundary=slow\r\nContent-Length: 100000\r\n\r\n"
    b"--slow\r\n"
)


def open_slow_uploads(url: str, count: int) -> list[socket.socket]:
    """`count` uploads that stop after their first bytes (TLS where the address is https)."""
    parts = urlsplit(url)
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # our own local CA
    connections = []
    for _ in range(count):
        connection = socket.create_connection((parts.hostname, parts.port), timeout=10)
        if parts.scheme == "https":
            connection = context.wrap_socket(connection, server_hostname="localhost")
        connection.sendall(SLOW_REQUEST)
        connections.append(connection)
    return connections


def closed_by_server(connections: list[socket.socket]) -> int:
    """How many of the connections the server has answered or closed (readable now)."""
    readable, _, _ = select.select(connections, [], [], 0.5)
    return len(readable)


def pings_while(url: str, ca: Path | None, seconds: float) -> dict:
    """One ordinary client's pings, once a second: answered within the timeout, and how fast."""
    answered: list[float] = []
    missed = 0
    session = requests.Session()
    verify = (
        str(ca) if ca else True
    )  # per request: REQUESTS_CA_BUNDLE would override Session.verify
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        began = time.monotonic()
        try:
            session.get(f"{url}/api/ping", timeout=PING_TIMEOUT_S, verify=verify).raise_for_status()
            answered.append((time.monotonic() - began) * 1000)
        except requests.RequestException:
            missed += 1
        time.sleep(max(0.0, 1 - (time.monotonic() - began)))
    return {
        "pings": len(answered) + missed,
        "answered": len(answered),
        "answered_share": len(answered) / max(1, len(answered) + missed),
        "median_ms": statistics.median(answered) if answered else None,
    }


def measure(front: bool, counts: list[int], seconds: float, workers: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="binbot-slow-") as tmp:
        instance = Path(tmp)
        database_url = f"sqlite:///{instance / 'binbot.sqlite3'}"
        process, url, ca = start_service(database_url, instance, workers, front=front)
        try:
            runs = {}
            for count in counts:
                connections = open_slow_uploads(url, count)
                try:
                    run = pings_while(url, ca, seconds)
                    run["slow_connections_closed_by_server"] = closed_by_server(connections)
                finally:
                    for connection in connections:
                        connection.close()
                runs[str(count)] = run
                time.sleep(2)  # let the server notice the closed connections
            return runs
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slow", type=int, nargs="+", default=[12, 50, 200], help="connections")
    parser.add_argument("--seconds", type=float, default=30, help="how long each is held")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn processes (4 threads)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    results = {"seconds": args.seconds, "ping_timeout_s": PING_TIMEOUT_S, "servers": {}}
    for name, front in (("binbot serve", False), ("binbot serve --front", True)):
        print(f"{name}: {args.slow} slow uploads, {args.seconds:.0f} s each ...")
        results["servers"][name] = measure(front, args.slow, args.seconds, args.workers)

    print(f"\nSlow uploads held open for {args.seconds:.0f} s; an ordinary client's pings, "
          f"once a second, {PING_TIMEOUT_S} s timeout")  # fmt: skip
    print(f"{'server':22s} {'slow':>5s} {'pings answered':>15s} {'median ms':>10s} "
          f"{'slow ones closed':>17s}")  # fmt: skip
    for name, runs in results["servers"].items():
        for count, run in runs.items():
            median = f"{run['median_ms']:.0f}" if run["median_ms"] is not None else "-"
            print(f"{name:22s} {count:>5s} {run['answered']:>7d} of {run['pings']:<5d} "
                  f"{median:>10s} {run['slow_connections_closed_by_server']:>9d} of {count}")  # fmt: skip
    front_runs = results["servers"]["binbot serve --front"].values()
    results["passes"] = all(run["answered_share"] == 1 for run in front_runs)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "slow_clients.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS / 'slow_clients.json'}")
    return 0 if results["passes"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
