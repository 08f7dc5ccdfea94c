"""Load benchmark: gunicorn on loopback, concurrent clients uploading real photos with retries.

    scripts/with-postgres python benchmarks/load_server.py --dataset ../shared/datasets/e-waste-image-dataset.zip

For each database (SQLite, and PostgreSQL when BINBOT_TEST_POSTGRES_URL is set, as under
scripts/with-postgres): start `gunicorn -w WORKERS` on 127.0.0.1, let CLIENTS threads upload
real JPEGs from the dataset (a share of them sent twice with the same Idempotency-Key, as an
offline queue does after a lost response) and fetch the manifest and model files, then check
the database and disk: every distinct photo stored exactly once. Beside it, from the same
run: how fast Pillow alone decodes and re-encodes those JPEGs on this machine (the work each
upload needs), the bound the service is measured against. Bar: no lost or duplicated
uploads, no 5xx. Writes ``benchmarks/results/load_server.json``. Traffic goes to 127.0.0.1
only, in bounded loops.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np
import requests

RESULTS = Path(__file__).resolve().parent / "results"


def photos_from(dataset_zip: str, count: int) -> list[bytes]:
    with zipfile.ZipFile(dataset_zip) as archive:
        names = sorted(n for n in archive.namelist() if "/train/" in n and n.endswith(".jpg"))
        step = max(1, len(names) // count)
        return [archive.read(n) for n in names[::step][:count]]


def pillow_bound(photos: list[bytes]) -> dict[str, float]:
    """Single-core rate of the upload's own image work (decode, orient, re-encode)."""
    from server.registry.photos import DecodeLimits, sanitize_image

    limits = DecodeLimits(max_pixels=50_000_000, max_full_decode_pixels=12_000_000, max_aspect=10)
    start = time.perf_counter()
    hashes = {sanitize_image(p, limits=limits, max_side=1600, quality=90).sha256 for p in photos}
    seconds = time.perf_counter() - start
    return {
        "images_per_second_one_core": len(photos) / seconds,
        "images_per_second_all_cores": len(photos) / seconds * (os.cpu_count() or 1),
        "distinct_after_reencoding": len(hashes),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(database_url: str, instance: Path, workers: int) -> tuple[subprocess.Popen, str]:
    env = os.environ | {
        "DATABASE_URL": database_url,
        "BINBOT_INSTANCE_DIR": str(instance),
        "BINBOT_UPLOADS_PER_MINUTE": "0",
        "BINBOT_UPLOADS_PER_DAY": "0",
    }
    # Create the schema and publish the starter model once, before the workers start.
    subprocess.run([sys.executable, "-m", "binbot", "db", "upgrade"], env=env, check=True)
    port = free_port()
    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen(
        [str(gunicorn), "-w", str(workers), "-b", f"127.0.0.1:{port}", "server:create_app()"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/api/labels", timeout=2).raise_for_status()
            return process, url
        except requests.RequestException:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("gunicorn did not come up")


def run_clients(url: str, photos: list[bytes], clients: int, retry_share: float) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    keys: dict[str, int] = {}
    lock = threading.Lock()
    rng = random.Random(7)
    plan = [(uuid.uuid4().hex, i, rng.random() < retry_share) for i in range(len(photos))]
    shares = [plan[c::clients] for c in range(clients)]

    def client(share) -> None:
        session = requests.Session()
        current = session.get(f"{url}/api/models/current", timeout=30)
        files = current.json()["files"]
        for entry in files:  # first visit downloads the model, later visits revalidate
            got = session.get(url + entry["url"], timeout=60)
            session.get(
                url + entry["url"], headers={"If-None-Match": got.headers["ETag"]}, timeout=30
            )
        for key, index, retried in share:
            for _attempt in range(2 if retried else 1):
                start = time.perf_counter()
                response = session.post(
                    f"{url}/api/submissions",
                    files={"image": ("photo.jpg", photos[index], "image/jpeg")},
                    data={"label": "Battery", "confidence": "0.5"},
                    headers={"Idempotency-Key": key},
                    timeout=60,
                )
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    if response.status_code in (200, 201):
                        keys.setdefault(key, response.json()["submission"]["id"])

    threads = [threading.Thread(target=client, args=(share,)) for share in shares]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    return {
        "wall_seconds": wall,
        "requests": len(latencies),
        "uploads_per_second": len(latencies) / wall,
        "p50_ms": float(np.percentile(latencies, 50) * 1000),
        "p99_ms": float(np.percentile(latencies, 99) * 1000),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": sum(v for k, v in statuses.items() if k >= 400),
        "server_errors": sum(v for k, v in statuses.items() if k >= 500),
        "retried_uploads": sum(1 for _, _, r in plan if r),
        "keys_answered": len(keys),
    }


def stored(database_url: str, instance: Path) -> dict:
    env = os.environ | {
        "DATABASE_URL": database_url,
        "BINBOT_INSTANCE_DIR": str(instance),
        "BINBOT_UPLOADS_PER_MINUTE": "0",
        "BINBOT_UPLOADS_PER_DAY": "0",
    }
    code = (
        "import json; from server import create_app; from server.extensions import db; "
        "from server.tables import Submission; app = create_app(); ctx = app.app_context(); "
        "ctx.push(); rows = db.session.query(Submission).all(); "
        "print(json.dumps({'rows': len(rows), 'distinct_sha256': len({r.sha256 for r in rows}), "
        "'keyed_rows': sum(1 for r in rows if r.idempotency_key)}))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    counts["files"] = sum(1 for p in (instance / "data" / "submissions").rglob("*.jpg"))
    return counts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=os.environ.get("BINBOT_DATASET"))
    parser.add_argument("--photos", type=int, default=240)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--retry-share", type=float, default=0.3)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)

    photos = photos_from(args.dataset, args.photos)
    bound = pillow_bound(photos)
    backends = {"sqlite": None}
    if os.environ.get("BINBOT_TEST_POSTGRES_URL"):
        backends["postgresql"] = os.environ["BINBOT_TEST_POSTGRES_URL"]
    results = {"pillow_bound": bound, "photos": len(photos), "clients": args.clients,
               "gunicorn_workers": args.workers, "backends": {}}  # fmt: skip
    for name, admin_url in backends.items():
        with tempfile.TemporaryDirectory(prefix=f"binbot-load-{name}-") as tmp:
            instance = Path(tmp)
            if admin_url is None:
                database_url = f"sqlite:///{instance / 'binbot.sqlite3'}"
            else:
                import psycopg

                db_name = f"binbot_load_{uuid.uuid4().hex[:8]}"
                dsn = admin_url.replace("postgresql+psycopg://", "postgresql://")
                with psycopg.connect(dsn, autocommit=True) as connection:
                    connection.execute(f'CREATE DATABASE "{db_name}"')
                database_url = admin_url.rsplit("/", 1)[0] + "/" + db_name
            process, url = start_server(database_url, instance, args.workers)
            try:
                load = run_clients(url, photos, args.clients, args.retry_share)
            finally:
                process.terminate()
                process.wait(timeout=30)
            counts = stored(database_url, instance)
        expected = bound["distinct_after_reencoding"]
        load["stored"] = counts
        load["expected_distinct_photos"] = expected
        load["lost_or_duplicated"] = abs(counts["rows"] - expected) + abs(
            counts["files"] - expected
        )
        load["passes"] = load["lost_or_duplicated"] == 0 and load["server_errors"] == 0
        results["backends"][name] = load

    print(f"\n{len(photos)} real JPEGs, {args.clients} clients, gunicorn -w {args.workers}, "
          f"{args.retry_share:.0%} of uploads retried with the same Idempotency-Key")  # fmt: skip
    print(f"Pillow alone (decode + orient + re-encode): {bound['images_per_second_one_core']:.0f} "
          f"images/s on one core, ~{bound['images_per_second_all_cores']:.0f}/s on "
          f"{os.cpu_count()} cores")  # fmt: skip
    print(f"{'database':10s} {'uploads/s':>9s} {'vs Pillow':>9s} {'p50 ms':>7s} {'p99 ms':>7s} "
          f"{'4xx/5xx':>8s} {'stored':>7s} {'expected':>8s}  verdict")  # fmt: skip
    for name, r in results["backends"].items():
        ratio = r["uploads_per_second"] / bound["images_per_second_all_cores"]
        print(
            f"{name:10s} {r['uploads_per_second']:9.1f} {ratio:9.2f} {r['p50_ms']:7.0f} "
            f"{r['p99_ms']:7.0f} {r['errors']:4d}/{r['server_errors']:<3d} "
            f"{r['stored']['rows']:7d} {r['expected_distinct_photos']:8d}  "
            + ("ok" if r["passes"] else "FAILED")
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load_server.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS / 'load_server.json'}")
    return 0 if all(r["passes"] for r in results["backends"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
