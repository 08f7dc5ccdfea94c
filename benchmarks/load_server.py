"""Ingest benchmark: phones' uploads through the production front, with retries, on each database.

    scripts/with-postgres python benchmarks/load_server.py --dataset ../shared/datasets/grocery-store-dataset.zip

Photos are what the app sends: upright JPEGs of at most 1024 px (dataset photos scaled as the
app's canvas does). For each database (SQLite, and PostgreSQL when BINBOT_TEST_POSTGRES_URL is
set, as under scripts/with-postgres): `binbot serve --front` (nginx with HTTPS, gunicorn's
threaded workers) on 127.0.0.1; CLIENTS threads upload them (a share sent twice with the same
Idempotency-Key, as an offline queue does after a lost response) and fetch the manifest and
model files; then the database and disk are checked: every distinct photo stored exactly once.

Reference in the same run: how fast Pillow alone decodes and re-encodes the same photos (the
work each upload needs) on all cores; the service's rate is reported as a share of it. Also
measured: the CPU time of the worst uploads the limits still let through (a 24 Mpx JPEG, an
8 Mpx PNG) and of the extreme ones they refuse. Bar: no lost or duplicated uploads, no 5xx.
Writes ``benchmarks/results/load_server.json``. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
import zlib
from pathlib import Path

import numpy as np
import requests
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from browser import free_port  # noqa: E402

RESULTS = HERE / "results"
APP_MAX_SIDE = 1024  # what the web app uploads (main.js UPLOAD_MAX_SIDE)
LIMITS = {
    "max_pixels": 24_000_000,
    "max_full_decode_pixels": 8_000_000,
    "max_aspect": 10,
    "min_side": 32,
}  # defaults


def photos_from(dataset_zip: str, count: int) -> list[bytes]:
    """Dataset photos as the app would send them: scaled to 1024 px on the longer side, JPEG 0.9."""
    with zipfile.ZipFile(dataset_zip) as archive:
        names = sorted(n for n in archive.namelist() if "/train/" in n and n.endswith(".jpg"))
        step = max(1, len(names) // count)
        photos = []
        for name in names[::step][:count]:
            image = Image.open(io.BytesIO(archive.read(name))).convert("RGB")
            scale = APP_MAX_SIDE / max(image.size)
            image = image.resize((round(image.width * scale), round(image.height * scale)))
            out = io.BytesIO()
            image.save(out, "JPEG", quality=90)
            photos.append(out.getvalue())
        return photos


def pillow_bound(photos: list[bytes]) -> dict[str, float]:
    """Single-core rate of the upload's own image work (decode, orient, re-encode)."""
    from server.registry.photos import DecodeLimits, sanitize_image

    limits = DecodeLimits(**LIMITS)
    start = time.perf_counter()
    hashes = {sanitize_image(p, limits=limits, max_side=1600, quality=90).sha256 for p in photos}
    seconds = time.perf_counter() - start
    return {
        "images_per_second_one_core": len(photos) / seconds,
        "images_per_second_all_cores": len(photos) / seconds * (os.cpu_count() or 1),
        "distinct_after_reencoding": len(hashes),
        "mean_bytes": sum(map(len, photos)) / len(photos),
    }


def worst_case_cpu() -> dict[str, float]:
    """CPU seconds of the heaviest uploads the limits allow, and of refused extremes."""
    from server.errors import ServiceError
    from server.registry.photos import DecodeLimits, sanitize_image

    def png(width: int, height: int, rows: bool = True) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            return (
                struct.pack(">I", len(data))
                + kind
                + data
                + struct.pack(">I", zlib.crc32(kind + data))
            )

        body = zlib.compress(
            b"".join(b"\0" + bytes(width) for _ in range(height)) if rows else b"", 9
        )
        header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", header)
            + chunk(b"IDAT", body)
            + chunk(b"IEND", b"")
        )

    def jpeg(width: int, height: int) -> bytes:
        noise = np.random.default_rng(1).integers(0, 255, (height // 8, width // 8, 3), np.uint8)
        out = io.BytesIO()
        Image.fromarray(noise).resize((width, height)).save(out, "JPEG", quality=90)
        return out.getvalue()

    cases = {"JPEG 5656x4242 (24 Mpx, allowed)": jpeg(5656, 4242),
             "PNG 3264x2448 (8 Mpx, allowed)": png(3264, 2448),
             "PNG 1x40000000 (refused)": png(1, 40_000_000, rows=False),
             "PNG 40000x40000 (refused)": png(40_000, 40_000, rows=False)}  # fmt: skip
    seconds = {}
    for name, data in cases.items():
        start = time.process_time()
        with contextlib.suppress(ServiceError):  # refused: the cost of saying so is measured
            sanitize_image(data, limits=DecodeLimits(**LIMITS), max_side=1600, quality=90)
        seconds[name] = time.process_time() - start
    return seconds


def start_service(
    database_url: str, instance: Path, workers: int, *, front: bool = True
) -> tuple[subprocess.Popen, str, Path | None]:
    """`binbot serve` (provisions the database first), with nginx before it unless
    ``front=False``; its address and, with the front, the CA that signed its certificate."""
    env = os.environ | {"DATABASE_URL": database_url, "BINBOT_INSTANCE_DIR": str(instance),
                        "BINBOT_UPLOADS_PER_MINUTE": "0", "BINBOT_UPLOADS_PER_DAY": "0"}  # fmt: skip
    http, https = free_port(), free_port()
    command = [sys.executable, "-m", "binbot", "serve", "--port", str(http),
               "--workers", str(workers), "--retrain-workers", "0"]  # fmt: skip
    if front:
        command += ["--front", "--https-port", str(https)]
        url, ca = f"https://127.0.0.1:{https}", instance / "front" / "tls" / "ca.crt"
    else:
        url, ca = f"http://127.0.0.1:{http}", None
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            verify = str(ca) if ca else True
            requests.get(f"{url}/api/labels", timeout=2, verify=verify).raise_for_status()
            return process, url, ca
        except (requests.RequestException, OSError):
            time.sleep(0.3)
    process.kill()
    raise RuntimeError(f"`{' '.join(command[2:])}` did not come up")


def run_clients(url: str, ca: Path, photos: list[bytes], clients: int, retry_share: float) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    keys: dict[str, int] = {}
    lock = threading.Lock()
    rng = random.Random(7)
    plan = [(uuid.uuid4().hex, i, rng.random() < retry_share) for i in range(len(photos))]
    shares = [plan[c::clients] for c in range(clients)]

    def client(share) -> None:
        session = requests.Session()
        session.trust_env = False  # else REQUESTS_CA_BUNDLE in the environment wins over verify
        session.verify = str(ca)
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
                        keys.setdefault(key, response.json().get("submission", {}).get("id"))

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
    parser.add_argument(
        "--workers", type=int, default=2, help="gunicorn processes (4 threads each)"
    )
    parser.add_argument("--retry-share", type=float, default=0.3)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)

    photos = photos_from(args.dataset, args.photos)
    bound = pillow_bound(photos)
    worst = worst_case_cpu()
    backends = {"sqlite": None}
    if os.environ.get("BINBOT_TEST_POSTGRES_URL"):
        backends["postgresql"] = os.environ["BINBOT_TEST_POSTGRES_URL"]
    results = {"pillow_bound": bound, "worst_case_cpu_seconds": worst, "photos": len(photos),
               "clients": args.clients, "gunicorn_workers": args.workers, "backends": {}}  # fmt: skip
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
            process, url, ca = start_service(database_url, instance, args.workers)
            try:
                load = run_clients(url, ca, photos, args.clients, args.retry_share)
            finally:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=60)
            counts = stored(database_url, instance)
        expected = bound["distinct_after_reencoding"]
        load["stored"] = counts
        load["expected_distinct_photos"] = expected
        load["lost_or_duplicated"] = abs(counts["rows"] - expected) + abs(
            counts["files"] - expected
        )
        load["passes"] = load["lost_or_duplicated"] == 0 and load["server_errors"] == 0
        results["backends"][name] = load

    print(f"\n{len(photos)} photos as the app sends them (<= {APP_MAX_SIDE} px, "
          f"{bound['mean_bytes'] / 1e3:.0f} kB on average), {args.clients} clients, through "
          f"nginx (HTTPS) to gunicorn {args.workers} x 4 threads, {args.retry_share:.0%} of "
          f"uploads retried with the same Idempotency-Key")  # fmt: skip
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
    print("CPU time of one upload, worst cases:")
    for name, value in worst.items():
        print(f"  {name:36s} {value:6.3f} s")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load_server.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS / 'load_server.json'}")
    return 0 if all(r["passes"] for r in results["backends"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
