"""Evaluate a run on its dataset's test split and write metrics, pictures and a readable report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from training.dataset import Dataset, ImageRecord, load_dataset
from training.duplicates import find_duplicates, records_with_copy_in
from training.errors import BinbotError
from training.run_dir import DATASET_FILE, EVALUATION_DIR, Run, load_run, write_json

Log = Callable[[str], None]
MISCLASSIFIED_SHOWN = 36


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], classes: int) -> np.ndarray:
    """Counts with rows = true class and columns = predicted class."""
    matrix = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    return matrix


def per_class_report(matrix: np.ndarray, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support per class, from the confusion matrix."""
    report = {}
    for i, label in enumerate(labels):
        tp = matrix[i, i]
        predicted, actual = matrix[:, i].sum(), matrix[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        report[label] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(actual),
        }
    return report


def predict_records(model, records: Sequence[ImageRecord], batch_size: int = 32) -> np.ndarray:
    """Class probabilities for ``records``, in order, through the training pipeline's preprocessing."""
    from training.pipeline import make_dataset

    images = make_dataset(records, batch_size=batch_size).map(lambda x, y: x)
    return model.predict(images, verbose=0)


def evaluate_run(
    run: Run | str | Path,
    dataset: Dataset | str | Path | None = None,
    *,
    log: Log = print,
) -> dict[str, Any]:
    """Score the run's model on the test split; write ``evaluation/`` and return the metrics."""
    run = run if isinstance(run, Run) else load_run(run)
    if dataset is None:
        summary = run.read(DATASET_FILE) or {}
        source = summary.get("source")
        if not source or not Path(source).exists():
            raise BinbotError(
                f"the dataset this run was trained on is not at {source!r}; pass DATASET"
            )
        dataset = source
    if not isinstance(dataset, Dataset):
        dataset = load_dataset(dataset)
    if dataset.classes != run.labels:
        raise BinbotError(
            f"the dataset's classes {dataset.classes} differ from the model's {run.labels}"
        )
    test = dataset.split("test")
    if not test:
        raise BinbotError("the dataset has no test images")

    from training.plots import plot_confusion_matrix, plot_image_grid

    out = run.path / EVALUATION_DIR
    out.mkdir(parents=True, exist_ok=True)
    log(f"Evaluating on {len(test)} test images ...")
    probabilities = predict_records(run.model, test)
    y_true = np.array([r.label for r in test])
    y_pred = probabilities.argmax(axis=1)
    labels = run.labels
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    per_class = per_class_report(matrix, labels)

    # Test images with a copy in train (or val) are recognised rather than classified.
    pairs = find_duplicates(dataset.split("train") + dataset.split("val") + test)
    copied = records_with_copy_in(pairs, "test", "train")
    unique = np.array([r.relpath not in copied for r in test])
    correct = y_true == y_pred

    metrics = {
        "test_accuracy": float(correct.mean()),
        "test_images": len(test),
        "test_accuracy_without_train_copies": float(correct[unique].mean())
        if unique.any()
        else None,
        "test_images_without_train_copies": int(unique.sum()),
        "test_images_with_train_copies": sorted(copied),
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "labels": labels,
        "confusion_matrix": matrix.tolist(),
        "dataset_fingerprint": dataset.fingerprint,
        "misclassified": [
            {
                "path": r.relpath,
                "true": labels[t],
                "predicted": labels[p],
                "confidence": float(probabilities[i, p]),
            }
            for i, (r, t, p) in enumerate(zip(test, y_true, y_pred, strict=True))
            if t != p
        ],
        # Every test image's prediction, keyed by content: lets two versions evaluated on the
        # same test images be compared image by image (the admin console's comparison).
        "predictions": [
            {
                "sha256": r.sha256,
                "path": r.relpath,
                "true": labels[t],
                "predicted": labels[p],
                "confidence": round(float(probabilities[i, p]), 4),
            }
            for i, (r, t, p) in enumerate(zip(test, y_true, y_pred, strict=True))
        ],
        # What the model learned from (images per split and class).
        "data_counts": dataset.counts(),
    }
    write_json(out / "metrics.json", metrics)
    plot_confusion_matrix(matrix, labels, out / "confusion_matrix.png")
    wrong = [
        (
            Path(test[i].path),
            f"true: {labels[y_true[i]]}\npred: {labels[y_pred[i]]} "
            f"{probabilities[i, y_pred[i]]:.0%}",
        )
        for i in np.flatnonzero(~correct)[:MISCLASSIFIED_SHOWN]
    ]
    plot_image_grid(wrong, out / "misclassified.png", title="Misclassified test images")
    (out / "report.md").write_text(render_report(metrics, run), encoding="utf-8")
    width = max(len(label) for label in labels)
    log(f"  {'class':{width}s}  precision  recall     f1  support")
    for label, m in per_class.items():
        log(
            f"  {label:{width}s}  {m['precision']:9.3f}  {m['recall']:6.3f}  {m['f1']:5.3f}  "
            f"{m['support']:7d}"
        )
    log(
        f"Test accuracy {metrics['test_accuracy']:.2%} ({int(correct.sum())}/{len(test)}); "
        f"without the {len(copied)} test images copied in train: "
        + (f"{metrics['test_accuracy_without_train_copies']:.2%}" if unique.any() else "n/a")
    )
    log(f"Report: {out / 'report.md'}")
    return metrics


def render_report(metrics: dict[str, Any], run: Run) -> str:
    """One Markdown page a person can read: headline figures, per-class table, pictures."""
    rows = "\n".join(
        f"| {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {m['support']} |"
        for label, m in metrics["per_class"].items()
    )
    without = metrics["test_accuracy_without_train_copies"]
    curves = "../training_curves.png"
    lines = [
        f"# Evaluation of `{run.path.name}`",
        "",
        f"- Test accuracy: **{metrics['test_accuracy']:.2%}** on {metrics['test_images']} images",
        f"- Without the {len(metrics['test_images_with_train_copies'])} test images that have a "
        f"copy in the train split: "
        + (
            f"**{without:.2%}** on {metrics['test_images_without_train_copies']} images"
            if without is not None
            else "n/a"
        ),
        f"- Macro F1: {metrics['macro_f1']:.3f}",
        f"- Dataset fingerprint: `{metrics['dataset_fingerprint']}`",
        "",
        "## Per class",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        rows,
        "",
        "## Confusion matrix",
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        f"## Misclassified test images ({len(metrics['misclassified'])})",
        "",
        "![misclassified](misclassified.png)",
        "",
    ]
    if (run.path / "training_curves.png").exists():
        lines += ["## Training curves", "", f"![training curves]({curves})", ""]
    return "\n".join(lines)
