"""Choose the default training recipe by validation accuracy on several datasets.

    python benchmarks/train_recipes.py --dataset ewaste=../shared/datasets/e-waste-image-dataset.zip \
        --dataset grocery=../shared/datasets/grocery-store-dataset.zip

Trains every candidate recipe on every dataset and reports the validation figures (loss and
top-1 of the last epoch, and wall time), never the test split: the test split is for the
benchmark of the chosen default (benchmarks/train_datasets.py). The frozen backbone's features
are cached across candidates that share a cut and views, so a sweep costs little more than
its fine-tuning. Writes ``benchmarks/results/train_recipes.json``.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from common import bench_parser, start_benchmark

RESULTS = Path(__file__).resolve().parent / "results"

# Each candidate changes the default TrainConfig in the named ways.
TOP_38_X_8 = {"fine_tune_layers": 38, "fine_tune_epochs": 8}
CANDIDATES = {
    "head only (frozen backbone)": {"fine_tune_epochs": 0},
    "top 38 layers, 8 epochs": TOP_38_X_8,
    "top 38 layers, 14 epochs": {"fine_tune_layers": 38, "fine_tune_epochs": 14},
    "top 64 layers, 8 epochs": {"fine_tune_layers": 64, "fine_tune_epochs": 8},
    "top 64 layers, 14 epochs": {"fine_tune_layers": 64, "fine_tune_epochs": 14},
    "top 38 layers, 8 epochs, 8 views": {**TOP_38_X_8, "views": 8},
    "top 38 layers, 8 epochs, fine-tune lr 3e-4": {**TOP_38_X_8, "fine_tune_learning_rate": 3e-4},
    "top 38 layers, 8 epochs, fine-tune lr 1e-3": {**TOP_38_X_8, "fine_tune_learning_rate": 1e-3},
    "top 38 layers, 8 epochs, fine-tune lr 3e-4, 1 warm-up epoch": {
        **TOP_38_X_8,
        "fine_tune_learning_rate": 3e-4,
        "fine_tune_warmup_epochs": 1,
    },
    "top 38 layers, 8 epochs, fine-tune lr 3e-5": {**TOP_38_X_8, "fine_tune_learning_rate": 3e-5},
}


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--dataset", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--out", default="runs/recipes")
    parser.add_argument("--only", action="append", help="run only these candidates")
    args = parser.parse_args()
    start_benchmark(args)

    from training.config import TrainConfig
    from training.dataset import load_dataset
    from training.train import train

    results = (
        json.loads((RESULTS / "train_recipes.json").read_text())
        if (RESULTS / "train_recipes.json").exists()
        else {}
    )
    for spec in args.dataset:
        name, path = spec.split("=", 1)
        dataset = load_dataset(path)
        for candidate, changes in CANDIDATES.items():
            if args.only and candidate not in args.only:
                continue
            config = TrainConfig(**changes)
            started = time.monotonic()
            run = train(path, Path(args.out) / name / candidate.replace(" ", "_"), config,
                        overwrite=True, dataset=dataset, log=lambda _: None)  # fmt: skip
            last = run.history[-1]
            row = {
                # The model written (averaged, or put back by the divergence guard), and the
                # last epoch's, which the sweeps before 2026-12-06 reported as the candidate's.
                "val_loss": run.kept["val_loss"],
                "val_accuracy": run.kept["val_accuracy"],
                "last_epoch": {"val_loss": last["val_loss"], "val_accuracy": last["val_accuracy"]},
                "seconds": round(time.monotonic() - started, 1),
                "config": {k: v for k, v in asdict(config).items() if k in changes},
            }
            results.setdefault(name, {})[candidate] = row
            print(f"{name:10s} {candidate:32s} val_acc {row['val_accuracy']:.4f} "
                  f"val_loss {row['val_loss']:.4f} {row['seconds'] / 60:5.1f} min")  # fmt: skip
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / "train_recipes.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
