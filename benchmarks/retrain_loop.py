"""Benchmark: the closed loop on the real dataset. Do accepted corrections fix a weak class?

    python benchmarks/retrain_loop.py --dataset ../shared/datasets/e-waste-image-dataset.zip

1. Cut one class (--weak-class, default Printer) down to --keep (10) training images; train
   and convert a model on that ("before"), and start the real stack with it published:
   gunicorn, one `binbot worker`, SQLite, the cut dataset as the retraining base.
2. Send the rest of that class's training images as user corrections (POST /api/submissions,
   label = the class), accept them and start a retraining, all through the admin API that
   the console uses, and wait for the job.
3. Report per-class recall on the test split before (the published model, in TF.js) and after
   (the candidate, in TF.js), with the retraining's wall time.

Both models use the same, shortened schedule (--head-epochs, --fine-tune-epochs) to keep the
run near 20 minutes on 2 cores. Writes ``benchmarks/results/retrain_loop.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from browser import Stack  # noqa: E402

from training.keras_cache import seed_keras_cache  # noqa: E402

RESULTS = HERE / "results"


def binbot(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "binbot", *args], text=True)
    if result.returncode != 0:
        raise SystemExit(f"binbot {args[0]} failed (exit {result.returncode})")


def cut_dataset(dataset, weak: str, keep: int, out: Path) -> list[Path]:
    """Split-layout links to the dataset with `weak` cut to `keep` train images.

    Returns the weak class's train images left out: the corrections users will send.
    """
    held = []
    kept = 0
    for record in sorted(dataset.records, key=lambda r: r.relpath):
        label = dataset.classes[record.label]
        if record.split == "train" and label == weak:
            if kept >= keep:
                held.append(record.path)
                continue
            kept += 1
        target = out / record.split / label / record.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(record.path.resolve())
    return held


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default=os.environ.get("BINBOT_DATASET"))
    parser.add_argument("--weights-dir", default=os.environ.get("BINBOT_WEIGHTS_DIR"))
    parser.add_argument("--keras-home", default=os.environ.get("KERAS_HOME", ".cache/keras"))
    parser.add_argument("--weak-class", default="Printer")
    parser.add_argument("--keep", type=int, default=10)
    parser.add_argument("--head-epochs", type=int, default=5)
    parser.add_argument("--fine-tune-epochs", type=int, default=5)
    parser.add_argument("--work", default="runs/loop", help="folder for the cut dataset and runs")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)
    seed_keras_cache(args.weights_dir, args.keras_home)

    from training.dataset import load_dataset

    work = Path(args.work).resolve()
    if work.exists():
        raise SystemExit(f"{work} exists; remove it or pass another --work")
    dataset = load_dataset(args.dataset)
    if args.weak_class not in dataset.classes:
        raise SystemExit(f"no class {args.weak_class!r}; classes: {dataset.classes}")
    cut = work / "dataset"
    held = cut_dataset(dataset, args.weak_class, args.keep, cut)
    print(f"{args.weak_class}: {args.keep} train images kept, {len(held)} held back as corrections")
    schedule = [
        "--head-epochs",
        str(args.head_epochs),
        "--fine-tune-epochs",
        str(args.fine_tune_epochs),
    ]

    started = time.monotonic()
    binbot("train", str(cut), "--out", str(work / "before"), *schedule)
    before_training_s = time.monotonic() - started
    binbot("convert", str(work / "before"), "--out", str(work / "before-bundle"),
           "--version", "before", "--dataset", str(cut))  # fmt: skip

    with tempfile.TemporaryDirectory(prefix="binbot-loop-") as tmp:
        env = {"BINBOT_STARTER_MODEL": str(work / "before-bundle"), "BINBOT_BASE_DATASET": str(cut)}
        stack = Stack(Path(tmp) / "instance", env).start()
        try:
            result, wall_s = run_loop(stack, held, args)
        finally:
            stack.stop()

    before, after = result["published"], result["candidate"]
    summary = {
        "weak_class": args.weak_class,
        "kept_train_images": args.keep,
        "corrections_sent": len(held),
        "schedule": {"head_epochs": args.head_epochs, "fine_tune_epochs": args.fine_tune_epochs},
        "before_training_s": before_training_s,
        "retraining_wall_s": wall_s,
        "before": {"version": before["version"], "test_accuracy": before["test_accuracy"],
                   "per_class_recall": before["per_class_recall"]},
        "after": {"version": result["candidate_version"], "test_accuracy": after["test_accuracy"],
                  "per_class_recall": after["per_class_recall"]},
        "corrections_used": result["corrections_used"],
    }  # fmt: skip
    print("\nper-class test recall (TF.js, test split), before -> after")
    for label, recall in before["per_class_recall"].items():
        mark = "  <- cut to " + str(args.keep) if label == args.weak_class else ""
        print(f"{label:16s} {recall:7.1%} -> {after['per_class_recall'][label]:7.1%}{mark}")
    print(f"{'test top-1':16s} {before['test_accuracy']:7.1%} -> {after['test_accuracy']:7.1%}")
    print(f"retraining wall time (job queued to candidate registered): {wall_s / 60:.1f} min")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "retrain_loop.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


def run_loop(stack: Stack, held: list[Path], args) -> tuple[dict, float]:
    """Corrections in through the public API; accept, retrain and wait through the admin API."""
    token = stack.admin_token()
    admin = requests.Session()
    admin.headers["Authorization"] = f"Bearer {token}"
    api = stack.web.url + "api/"
    for path in held:
        response = requests.post(
            api + "submissions",
            files={"image": (path.name, path.read_bytes(), "image/jpeg")},
            data={"label": args.weak_class},
            headers={"Idempotency-Key": str(uuid.uuid4())},
            timeout=60,
        )
        response.raise_for_status()
    pending = admin.get(api + "admin/submissions", params={"status": "pending", "limit": 500})
    ids = [s["id"] for s in pending.json()["submissions"]]
    admin.post(
        api + "admin/submissions/review", json={"ids": ids, "action": "accept"}
    ).raise_for_status()
    print(f"{len(ids)} corrections accepted; retraining ...")
    started = time.monotonic()
    settings = {"head_epochs": args.head_epochs, "fine_tune_epochs": args.fine_tune_epochs}
    job = admin.post(api + "admin/jobs", json={"settings": settings}).json()["job"]
    last = ""
    while True:
        job = admin.get(api + f"admin/jobs/{job['id']}").json()["job"]
        if job.get("progress") and job["progress"] != last:
            last = job["progress"]
            print(f"  [{(time.monotonic() - started) / 60:5.1f} min] {last}")
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(5)
    wall = time.monotonic() - started
    if job["status"] != "succeeded":
        raise SystemExit(f"the retraining job {job['status']}: {job.get('error')}")
    return job["result"], wall


if __name__ == "__main__":
    raise SystemExit(main())
