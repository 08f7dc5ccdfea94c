"""Benchmark: the default training on several datasets, against the previous recipe.

    python benchmarks/train_datasets.py \
        --dataset ewaste=../shared/datasets/e-waste-image-dataset.zip \
        --dataset grocery=../shared/datasets/grocery-store-dataset.zip \
        --previous grocery --previous-tree /tmp/previous-recipe

For each dataset: train with the default settings from a cold feature cache, evaluate on the
test split (Keras), convert with the default quantization and read the converted model's test
top-1 in TF.js from its manifest, and time the whole of it. With --previous NAME, the recipe of
an earlier commit (checked out in --previous-tree, run with this Python) is trained on that
dataset too, and the two are compared image by image on the same test photos: the difference
in top-1 and its paired standard error. Prints a table, writes
``benchmarks/results/train_datasets.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import bench_parser, start_benchmark

RESULTS = Path(__file__).resolve().parent / "results"


def binbot(*args: str, cwd: Path | None = None, env: dict | None = None) -> float:
    """Run a binbot command (printing what it prints); its wall time in seconds."""
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "binbot", *args], cwd=cwd, env=env)
    if done.returncode != 0:
        raise SystemExit(f"binbot {' '.join(args[:2])} failed (exit {done.returncode})")
    return time.monotonic() - started


def train_and_convert(path: str, out: Path, cache: Path) -> dict:
    """Default training (cold cache), evaluation and conversion; figures and times."""
    env = {**os.environ, "BINBOT_CACHE_DIR": str(cache)}
    train_s = binbot("train", path, "--out", str(out / "run"), "--overwrite", env=env)
    convert_s = binbot("convert", str(out / "run"), "--out", str(out / "bundle"), "--overwrite",
                       "--dataset", path, env=env)  # fmt: skip
    metrics = json.loads((out / "run" / "evaluation" / "metrics.json").read_text())
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    return {
        "keras_test_top1": metrics["test_accuracy"],
        "tfjs_test_top1": manifest["metrics"]["test_accuracy"],
        "test_images": metrics["test_images"],
        "quantization": manifest["quantization"]["mode"],
        "bundle_bytes": manifest["bundle_bytes"],
        "train_and_evaluate_s": round(train_s, 1),
        "convert_s": round(convert_s, 1),
        "predictions": metrics["predictions"],
    }


def train_previous(path: str, out: Path, tree: Path) -> dict:
    """The earlier commit's default training, run from its own checkout.

    It runs with its checkout as the working directory, so every path it gets is absolute.
    """
    out, path = out.resolve(), str(Path(path).resolve())
    train_s = binbot("train", path, "--out", str(out / "run"), "--overwrite", cwd=tree)
    metrics = json.loads((out / "run" / "evaluation" / "metrics.json").read_text())
    return {
        "keras_test_top1": metrics["test_accuracy"],
        "test_images": metrics["test_images"],
        "train_and_evaluate_s": round(train_s, 1),
        "predictions": metrics["predictions"],
    }


def paired_difference(new: list[dict], old: list[dict]) -> dict:
    """New minus old top-1 on the same test photos, with the paired standard error."""
    old_right = {(p["sha256"], p["path"]): p["predicted"] == p["true"] for p in old}
    diffs = np.array(
        [int(p["predicted"] == p["true"]) - int(old_right[(p["sha256"], p["path"])]) for p in new]
    )
    se = float(diffs.std(ddof=1) / np.sqrt(len(diffs)))
    return {"difference": float(diffs.mean()), "paired_standard_error": se,
            "margin_in_standard_errors": float(diffs.mean() / se) if se else None}  # fmt: skip


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--dataset", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--previous", action="append", default=[], help="NAME: compare there")
    parser.add_argument("--previous-tree", type=Path, help="checkout of the previous recipe")
    parser.add_argument("--out", default="runs/bench-datasets")
    args = parser.parse_args()
    start_benchmark(args)

    saved = RESULTS / "train_datasets.json"
    results: dict = json.loads(saved.read_text()) if saved.exists() else {}  # other datasets kept
    for spec in args.dataset:
        name, path = spec.split("=", 1)
        with tempfile.TemporaryDirectory(prefix="binbot-cold-cache-") as cache:
            row = train_and_convert(path, Path(args.out) / name / "default", Path(cache))
        if name in args.previous:
            previous = train_previous(path, Path(args.out) / name / "previous", args.previous_tree)
            row["previous"] = {k: v for k, v in previous.items() if k != "predictions"}
            row["versus_previous"] = paired_difference(row["predictions"], previous["predictions"])
        row.pop("predictions")
        results[name] = row
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "train_datasets.json").write_text(json.dumps(results, indent=2) + "\n")

    print(f"\n{'dataset':10s} {'recipe':9s} {'Keras top-1':>11s} {'TF.js top-1':>11s} "
          f"{'bundle':>8s} {'train+eval':>10s} {'convert':>8s}")  # fmt: skip
    for name, row in results.items():
        print(f"{name:10s} {'default':9s} {row['keras_test_top1']:11.2%} "
              f"{row['tfjs_test_top1']:11.2%} {row['bundle_bytes'] / 1e6:6.2f}MB "
              f"{row['train_and_evaluate_s'] / 60:8.1f}m {row['convert_s'] / 60:7.1f}m")  # fmt: skip
        if "previous" in row:
            old, versus = row["previous"], row["versus_previous"]
            print(f"{'':10s} {'previous':9s} {old['keras_test_top1']:11.2%} {'':>11s} {'':>8s} "
                  f"{old['train_and_evaluate_s'] / 60:8.1f}m")  # fmt: skip
            print(f"{'':10s} difference {versus['difference']:+.2%} "
                  f"(paired SE {versus['paired_standard_error']:.2%}, "
                  f"{versus['margin_in_standard_errors']:.1f} SE)")  # fmt: skip
    print(f"\nwrote {RESULTS / 'train_datasets.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
