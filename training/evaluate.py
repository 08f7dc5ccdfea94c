"""Evaluate a run on its dataset's test split and write metrics, pictures and a readable report."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from binbot.columns import columns, padded
from binbot.errors import BinbotError, counted
from binbot.files import staged_folder
from training.dataset import Dataset, ImageRecord
from training.duplicates import find_duplicates, records_with_copy_in
from training.metrics import confusion_matrix, per_class_report
from training.run_dir import EVALUATION_DIR, Run, dataset_of_run, load_run, write_json

Log = Callable[[str], None]
MISCLASSIFIED_SHOWN = 36


def predict_records(model, records: Sequence[ImageRecord], log: Log | None = None) -> Any:
    """``model``'s outputs for ``records``, in order, through the training pipeline's
    preprocessing: an array, or a dict of arrays for a model with named outputs. With
    ``log``, long work says how far it is."""
    from training.callbacks import Progress
    from training.forward import IMAGE_BATCH, compiled, concatenate, run_batches
    from training.pipeline import make_dataset

    images = make_dataset(records, batch_size=IMAGE_BATCH).map(lambda x, y: x)
    progress = Progress(len(records), "images", log).advance if log else None
    return concatenate(run_batches(compiled(model), images, progress))


def evaluate_run(
    run: Run | str | Path,
    dataset: Dataset | str | Path | None = None,
    *,
    log: Log = print,
    probabilities: np.ndarray | None = None,
) -> dict[str, Any]:
    """Score the run's model on the test split; write ``evaluation/`` and return the metrics.
    ``probabilities``: the model's on the test split, in its order, when the caller has them
    (a retraining computes them once for this and for the conversion's reference)."""
    run = run if isinstance(run, Run) else load_run(run)
    dataset = dataset_of_run(run, dataset)
    test = dataset.split("test")
    if not test:
        raise BinbotError("the dataset has no test images")
    log(f"Evaluating on {len(test)} test images ...")
    if probabilities is None:
        probabilities = predict_records(run.model, test, log)
    metrics = test_metrics(dataset, run.labels, probabilities)
    out = run.path / EVALUATION_DIR
    write_evaluation(out, metrics, run, test, probabilities)
    width = max(columns(label) for label in [*run.labels, "class"])
    log(f"  {'#':>3s} {padded('class', width)}  precision  recall     f1  support")
    for number, (label, m) in enumerate(metrics["per_class"].items(), start=1):
        log(
            f"  {number:3d} {padded(label, width)}  {m['precision']:9.3f}  {m['recall']:6.3f}  "
            f"{m['f1']:5.3f}  {m['support']:7d}"
        )
    log(accuracy_line(metrics, len(test)))
    log(f"Report: {out / 'report.md'}")
    return metrics


# What the accuracy without test copies of train photos is when no test photo is left.
ALL_COPIES = "n/a (every test image is a copy)"


def accuracy_line(metrics: dict[str, Any], test_images: int) -> str:
    """The test accuracy in one line, and, when some test photos are copies of train photos,
    the accuracy without them: the figure such copies cannot flatter."""
    correct = round(metrics["test_accuracy"] * test_images)
    line = f"Test accuracy {metrics['test_accuracy']:.2%} ({correct}/{test_images})"
    if copies := len(metrics["test_images_with_train_copies"]):
        without = metrics["test_accuracy_without_train_copies"]
        rest = f"{without:.2%}" if without is not None else ALL_COPIES
        line += f"; without the {counted(copies, 'test image')} copied in train: {rest}"
    return line


def _copies_line(metrics: dict[str, Any]) -> str:
    """The report's line on test photos that are copies of train photos, and the accuracy
    without them."""
    copies = len(metrics["test_images_with_train_copies"])
    if not copies:
        return "- No test image has a copy in the train split"
    without = metrics["test_accuracy_without_train_copies"]
    score = (f"**{without:.2%}** on {metrics['test_images_without_train_copies']} images"
             if without is not None else ALL_COPIES)  # fmt: skip
    return f"- Without the {counted(copies, 'test image')} that have a copy in the train split: {score}"


def test_metrics(dataset: Dataset, labels: list[str], probabilities: np.ndarray) -> dict[str, Any]:
    """Every figure of the evaluation, from the model's probabilities on the test split."""
    test = dataset.split("test")
    y_true = np.array([r.label for r in test])
    y_pred = probabilities.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    per_class = per_class_report(matrix, labels)
    # Test images with a copy in train (or val) are recognised rather than classified.
    pairs = find_duplicates(
        dataset.split("train") + dataset.split("val") + test, known=dataset.signatures
    )
    copied = records_with_copy_in(pairs, "test", "train")
    unique = np.array([r.relpath not in copied for r in test])
    correct = y_true == y_pred
    predictions = [
        {"sha256": r.sha256, "path": r.relpath, "true": labels[t], "predicted": labels[p],
         "confidence": float(probabilities[i, p])}
        for i, (r, t, p) in enumerate(zip(test, y_true, y_pred, strict=True))
    ]  # fmt: skip
    return {
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
            {k: p[k] for k in ("path", "true", "predicted", "confidence")}
            for p in predictions
            if p["true"] != p["predicted"]
        ],
        # Every test image's prediction, keyed by content: lets two versions evaluated on the
        # same test images be compared image by image (the admin console's comparison).
        "predictions": [{**p, "confidence": round(p["confidence"], 4)} for p in predictions],
        # What the model learned from (images per split and class).
        "data_counts": dataset.counts(),
    }


def write_evaluation(
    out: Path,
    metrics: dict[str, Any],
    run: Run,
    test: Sequence[ImageRecord],
    probabilities: np.ndarray,
) -> None:
    """metrics.json, the confusion matrix, the misclassified images and report.md: all of
    them, replacing an earlier evaluation whole, or (a full disk) none, the earlier kept."""
    with staged_folder(out) as staging:
        _write_evaluation_files(staging, metrics, run, test)


def _write_evaluation_files(
    out: Path, metrics: dict[str, Any], run: Run, test: Sequence[ImageRecord]
) -> None:
    from training.plots import class_caption, plot_confusion_matrix, plot_image_grid

    write_json(out / "metrics.json", metrics)
    labels = run.labels
    plot_confusion_matrix(
        np.array(metrics["confusion_matrix"]), labels, out / "confusion_matrix.png"
    )
    by_path = {r.relpath: r for r in test}
    wrong = [
        (
            Path(by_path[m["path"]].path),
            f"true: {class_caption(m['true'], labels.index(m['true']))}\n"
            f"pred: {class_caption(m['predicted'], labels.index(m['predicted']))} "
            f"{m['confidence']:.0%}",
        )
        for m in metrics["misclassified"][:MISCLASSIFIED_SHOWN]
    ]
    plot_image_grid(wrong, out / "misclassified.png", title="Misclassified test images")
    (out / "report.md").write_text(render_report(metrics, run), encoding="utf-8")


def render_report(metrics: dict[str, Any], run: Run) -> str:
    """One Markdown page a person can read: headline figures, per-class table, pictures."""
    rows = "\n".join(
        f"| {number} | {label} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} "
        f"| {m['support']} |"
        for number, (label, m) in enumerate(metrics["per_class"].items(), start=1)
    )
    curves = "../training_curves.png"
    lines = [
        f"# Evaluation of `{run.path.name}`",
        "",
        f"- Test accuracy: **{metrics['test_accuracy']:.2%}** on {metrics['test_images']} images",
        _copies_line(metrics),
        f"- Macro F1: {metrics['macro_f1']:.3f}",
        f"- Dataset fingerprint: `{metrics['dataset_fingerprint']}`",
        "",
        "## Per class",
        "",
        "| # | class | precision | recall | F1 | support |",
        "|---|---|---|---|---|---|",
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
