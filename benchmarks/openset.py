"""Benchmark: can the shipped bundles tell their kinds from anything else?

    python benchmarks/openset.py --dataset ../shared/datasets/e-waste-image-dataset.zip \
        --far ../shared/datasets/grocery-store-dataset.zip

For each of --pairs seeded pairs of e-waste kinds: train the default recipe on the other
kinds, convert it (default quantization), and run the bundle in TF.js (Node, wasm) on
- known: the test photos of the kinds it learned (and their validation photos, which set each
  method's threshold at 95% accepted);
- near: every photo of the two held-out kinds (e-waste it was never taught);
- far: grocery photos (not e-waste at all).
Each open-set method is fitted on the training photos' embeddings and scored on the bundle's
own outputs: AUROC and the false-accept rate at 95% known acceptance (FPR@95TPR), near and
far, with max-softmax (the baseline) in the same run. Writes benchmarks/results/openset.json.

Each pair's outputs (the bundle's TF.js embeddings and probabilities, the training photos'
embeddings) are kept in --keep; --rescore scores every method again on them without training,
so a method added later is compared on exactly the same bundles' outputs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import bench_parser, start_benchmark

RESULTS = Path(__file__).resolve().parent / "results"


def binbot(*args: str) -> None:
    if subprocess.run([sys.executable, "-m", "binbot", *args]).returncode != 0:
        raise SystemExit(f"binbot {args[0]} failed")


def without(dataset, held: list[str], out: Path) -> None:
    """Split-layout links to ``dataset`` with the ``held`` kinds left out."""
    for record in dataset.records:
        label = dataset.classes[record.label]
        if label in held:
            continue
        target = out / record.split / label / record.path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(record.path.resolve())


def bundle_outputs(bundle: Path, records) -> tuple[np.ndarray, np.ndarray]:
    from conversion.verify import run_tfjs

    signature = json.loads((bundle / "model.json").read_text())["signature"]
    result = run_tfjs(bundle, records, signature, warmup=1)
    return np.asarray(result["embeddings"]), np.asarray(result["probabilities"])


def keras_embeddings(run_dir: Path, records) -> np.ndarray:
    import keras

    from training.evaluate import predict_records
    from training.run_dir import load_run

    model = load_run(run_dir).model
    return predict_records(keras.Model(model.input, model.get_layer("embedding").output), records)


def collect_outputs(work: Path, dataset, far_records, held: list[str]) -> dict[str, np.ndarray]:
    """Train and convert without ``held``; the bundle's TF.js outputs on every photo set, and
    the training photos' embeddings the methods are fitted on."""
    from training.dataset import load_dataset

    data = work / "dataset"
    without(dataset, held, data)
    binbot("train", str(data), "--out", str(work / "run"), "--overwrite")
    binbot("convert", str(work / "run"), "--out", str(work / "bundle"), "--overwrite",
           "--dataset", str(data))  # fmt: skip
    learned = load_dataset(data)
    train = learned.split("train")
    near = [r for r in dataset.records if dataset.classes[r.label] in held]
    kept: dict[str, np.ndarray] = {}
    for name, records in (("val", learned.split("val")), ("test", learned.split("test")),
                          ("near", near), ("far", far_records)):  # fmt: skip
        kept[f"{name}_embeddings"], kept[f"{name}_probabilities"] = bundle_outputs(
            work / "bundle", records
        )
    kept["test_labels"] = np.array([r.label for r in learned.split("test")])
    kept["train_embeddings"] = keras_embeddings(work / "run", train)
    kept["train_labels"] = np.array([r.label for r in train])
    return kept


def score_pair(held: list[str], kept: dict[str, np.ndarray]) -> dict:
    """Every method fitted on the training embeddings, scored on the bundle's outputs."""
    from training.openset import METHODS, auroc, false_accepts_at, fit

    outputs = {
        name: (kept[f"{name}_embeddings"], kept[f"{name}_probabilities"])
        for name in ("val", "test", "near", "far")
    }
    truth = kept["test_labels"]
    row = {"held_out": held, "known_test_top1": float((outputs["test"][1].argmax(1) == truth).mean()),
           "methods": {}}  # fmt: skip
    for method in METHODS:
        scorer = fit(method, kept["train_embeddings"], kept["train_labels"])
        scores = {name: scorer.scores(*out) for name, out in outputs.items()}
        row["methods"][method] = {
            **{f"{kind}_auroc": auroc(scores["test"], scores[kind]) for kind in ("near", "far")},
            **{f"{kind}_fpr_at_95tpr": false_accepts_at(scores["val"], scores[kind])
               for kind in ("near", "far")},
            "known_test_accepted": float(
                (scores["test"] >= np.quantile(scores["val"], 0.05)).mean()
            ),
        }  # fmt: skip
    return row


def kept_file(keep: Path, held: list[str]) -> Path:
    return keep / ("held-" + "+".join(h.replace(" ", "_") for h in held) + ".npz")


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--dataset", default=os.environ.get("BINBOT_DATASET"))
    parser.add_argument("--far", required=True, help="a dataset of everyday photos")
    parser.add_argument("--far-photos", type=int, default=600)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--keep", type=Path, default=Path("runs/openset"),
        help="where each pair's TF.js outputs are kept (.npz), to score methods again",
    )  # fmt: skip
    parser.add_argument(
        "--rescore", action="store_true",
        help="no training: score every method again on the outputs kept by an earlier run",
    )  # fmt: skip
    args = parser.parse_args()
    start_benchmark(args)

    from training.dataset import load_dataset

    dataset = load_dataset(args.dataset)
    far = load_dataset(args.far).split("test")
    far = [
        far[i] for i in np.random.default_rng(args.seed).permutation(len(far))[: args.far_photos]
    ]
    rng = np.random.default_rng(args.seed)
    rows = []
    pairs: list[list[str]] = []
    while len(pairs) < args.pairs:  # distinct pairs: a repeat would only repeat its figures
        held = sorted(rng.choice(dataset.classes, 2, replace=False).tolist())
        if held not in pairs:
            pairs.append(held)
    for number, held in enumerate(pairs, 1):
        print(f"pair {number}: holding out {held}")
        kept_path = kept_file(args.keep, held)
        if args.rescore:
            if not kept_path.exists():
                raise SystemExit(f"{kept_path} missing: run without --rescore first")
            kept = dict(np.load(kept_path))
        else:
            with tempfile.TemporaryDirectory(prefix="binbot-openset-") as tmp:
                kept = collect_outputs(Path(tmp), dataset, far, held)
            args.keep.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(kept_path, **kept)
        rows.append(score_pair(held, kept))
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "openset.json").write_text(json.dumps({"pairs": rows}, indent=2) + "\n")
    summary = summarise(rows)
    (RESULTS / "openset.json").write_text(
        json.dumps({"pairs": rows, "mean": summary}, indent=2) + "\n"
    )
    return 0


def summarise(rows: list[dict]) -> dict:
    methods = rows[0]["methods"]
    mean = {m: {k: float(np.mean([r["methods"][m][k] for r in rows])) for k in methods[m]}
            for m in methods}  # fmt: skip
    top1 = float(np.mean([r["known_test_top1"] for r in rows]))
    print(f"\n{len(rows)} pairs held out; known-kind top-1 in TF.js {top1:.2%} (mean)")
    print(f"{'method':27s} {'near AUROC':>10s} {'near FPR@95':>11s} {'far AUROC':>10s} "
          f"{'far FPR@95':>10s} {'known kept':>10s}")  # fmt: skip
    for method, m in mean.items():
        print(f"{method:27s} {m['near_auroc']:10.3f} {m['near_fpr_at_95tpr']:11.1%} "
              f"{m['far_auroc']:10.3f} {m['far_fpr_at_95tpr']:10.1%} "
              f"{m['known_test_accepted']:10.1%}")  # fmt: skip
    return {"known_test_top1": top1, "methods": mean}


if __name__ == "__main__":
    raise SystemExit(main())
