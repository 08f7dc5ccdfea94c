"""Evaluation arithmetic and pipeline ordering: the places a silent mix-up would hide."""

from __future__ import annotations

import numpy as np
from conftest import solid_jpeg

from training.dataset import load_dataset
from training.evaluate import accuracy_line
from training.inspection import imbalance_ratio
from training.metrics import confusion_matrix, per_class_report
from training.pipeline import class_weights, make_dataset


def test_confusion_matrix_rows_are_true_columns_are_predicted():
    y_true = [0, 0, 0, 1, 1, 2]
    y_pred = [0, 1, 1, 1, 1, 0]
    matrix = confusion_matrix(y_true, y_pred, 3)
    assert matrix.tolist() == [[1, 2, 0], [0, 2, 0], [1, 0, 0]]
    report = per_class_report(matrix, ["a", "b", "c"])
    assert report["a"] == {"precision": 0.5, "recall": 1 / 3, "f1": 0.4, "support": 3}
    assert report["b"]["precision"] == 0.5 and report["b"]["recall"] == 1.0
    assert report["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_evaluation_pipeline_keeps_record_order_and_labels(tmp_path):
    colours = {"Blue": (0, 0, 255), "Green": (0, 255, 0), "Red": (255, 0, 0)}
    for c, (name, colour) in enumerate(colours.items()):
        for i in range(6):
            solid_jpeg(tmp_path / name / f"{i}.jpg", colour, noise_seed=c * 10 + i)
    dataset = load_dataset(tmp_path)
    assert dataset.classes == ["Blue", "Green", "Red"]
    records = dataset.records
    images, labels = [], []
    for x, y in make_dataset(records, batch_size=4):
        images.append(x.numpy())
        labels.append(y.numpy())
    images, labels = np.concatenate(images), np.concatenate(labels)
    assert labels.tolist() == [r.label for r in records]
    dominant = images.mean(axis=(1, 2)).argmax(axis=1)  # RGB channel that is brightest
    channel_of = {"Red": 0, "Green": 1, "Blue": 2}
    assert dominant.tolist() == [channel_of[dataset.classes[r.label]] for r in records]


def test_class_weights_only_for_imbalanced_classes(tmp_path):
    for i in range(8):
        solid_jpeg(tmp_path / "Many" / f"{i}.jpg", (200, 0, 0), noise_seed=i)
    for i in range(4):
        solid_jpeg(tmp_path / "Few" / f"{i}.jpg", (0, 0, 200), noise_seed=50 + i)
    records = load_dataset(tmp_path).records  # Few = 0, Many = 1
    weights = class_weights(records, 2)
    assert weights is not None and weights[0] > weights[1]
    assert weights[0] * 4 == weights[1] * 8  # each class contributes equally
    balanced = [r for r in records if r.label == 1][:4] + [r for r in records if r.label == 0]
    assert class_weights(balanced, 2) is None
    assert imbalance_ratio({"a": 10, "b": 5, "c": 0}) == 2.0


def test_long_predictions_say_how_far_they_are():
    """Evaluating a large test split was minutes of silence after "Evaluating on N images"."""
    from training.callbacks import Progress

    now = [0.0]
    lines: list[str] = []
    progress = Progress(10_000, "images", lines.append, clock=lambda: now[0])
    for _ in range(100):  # 100 batches of 64 images, 1 s each
        now[0] += 1.0
        progress.advance(64)
    assert lines == [
        "  1280/10000 images, 2.3 min left",
        "  2560/10000 images, 1.9 min left",
        "  3840/10000 images, 1.6 min left",
        "  5120/10000 images, 76 s left",
        "  6400/10000 images, 56 s left",
    ]
    short: list[str] = []
    quick = Progress(300, "images", short.append, clock=lambda: now[0])
    quick.advance(300)
    assert short == []  # work shorter than the interval says nothing


def test_the_accuracy_line_names_test_copies_of_train_photos_only_when_there_are_some():
    """It said "without the 0 test images copied in train: 42.49%", the same figure again."""
    none = {"test_accuracy": 0.9, "test_images_with_train_copies": [],
            "test_accuracy_without_train_copies": 0.9}  # fmt: skip
    assert accuracy_line(none, 10) == "Test accuracy 90.00% (9/10)"
    one = {**none, "test_images_with_train_copies": ["test/a/1.jpg"],
           "test_accuracy_without_train_copies": 8 / 9}  # fmt: skip
    assert accuracy_line(one, 10) == (
        "Test accuracy 90.00% (9/10); without the 1 test image copied in train: 88.89%"
    )
    every = {**one, "test_images_with_train_copies": ["x"] * 10,
             "test_accuracy_without_train_copies": None}  # fmt: skip
    assert accuracy_line(every, 10).endswith("10 test images copied in train: n/a (every "
                                             "test image is a copy)")  # fmt: skip
