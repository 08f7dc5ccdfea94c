"""Two-phase transfer learning: train the head on the frozen backbone, then fine-tune its top.

Both phases stop early on validation loss and restore their best weights. Fine-tuning uses a
cosine learning-rate decay to zero, so the backbone settles instead of jittering around a
high rate. The checkpoint keeps each phase's best epoch; fine-tuning starts from the head
phase's best, so its best epoch is the run's ``model.keras`` (the head's when fine-tuning is
off). Choosing across phases by validation loss instead would let the noise of a small
validation split throw the fine-tuning away. Everything needed to reproduce
or audit the run is written beside it.
"""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from training.dataset import Dataset, ImageRecord, load_dataset, progress_logger
from training.errors import BinbotError
from training.run_dir import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    CURVES_FILE,
    DATASET_FILE,
    HISTORY_FILE,
    LABELS_FILE,
    MODEL_FILE,
    write_json,
)

Log = Callable[[str], None]


@dataclass
class TrainConfig:
    """Every setting of a run; written to ``config.json`` so a run can be reproduced."""

    backbone: str = "mobilenet_v2"
    weights: str | None = "imagenet"
    batch_size: int = 32
    head_epochs: int = 15
    head_learning_rate: float = 1e-3
    fine_tune_epochs: int = 12
    fine_tune_learning_rate: float = 5e-5
    fine_tune_layers: int | None = None  # None: the whole backbone
    patience: int = 4
    dense_units: int = 1024
    dropout: float = 0.5
    augment: bool = True
    seed: int = 42
    limit_per_class: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict[str, Any]]
    seconds: float
    best_val_loss: float


def limit_per_class(records: list[ImageRecord], limit: int | None) -> list[ImageRecord]:
    """The first ``limit`` images of each class (in path order): quick runs and tests."""
    if not limit:
        return records
    kept: dict[int, int] = {}
    out = []
    for r in sorted(records, key=lambda r: r.relpath):
        if kept.get(r.label, 0) < limit:
            kept[r.label] = kept.get(r.label, 0) + 1
            out.append(r)
    return out


def prepare_run_dir(out: Path, overwrite: bool) -> None:
    if (out / MODEL_FILE).exists() and not overwrite:
        raise BinbotError(
            f"{out} already holds a trained model; choose another --out or --overwrite"
        )
    if out.exists() and not out.is_dir():
        raise BinbotError(f"--out must be a folder: {out}")
    out.mkdir(parents=True, exist_ok=True)


def train(
    dataset_path: str | Path,
    out: str | Path,
    config: TrainConfig | None = None,
    *,
    overwrite: bool = False,
    log: Log = print,
    dataset: Dataset | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TrainResult:
    """Train a classifier on ``dataset_path`` and write the run folder ``out``.

    ``should_stop`` is polled after every batch; when it returns true, training raises
    TrainingCancelled (a retraining job an admin cancelled).
    """
    config = config or TrainConfig()
    out = Path(out)
    prepare_run_dir(out, overwrite)
    if dataset is None:
        log(f"Reading dataset {dataset_path} ...")
        dataset = load_dataset(dataset_path, seed=config.seed, progress=progress_logger(log))
    for bad in dataset.bad_files:
        log(f"  skipped {bad.relpath}: {bad.reason}")
    for warning in dataset.warnings:
        log(f"  warning: {warning}")

    import keras

    from training.callbacks import EpochLog, StopWhenAsked
    from training.model import build_model, unfreeze_top
    from training.pipeline import class_weights, make_dataset
    from training.plots import plot_training_curves

    keras.utils.set_random_seed(config.seed)
    train_records = limit_per_class(dataset.split("train"), config.limit_per_class)
    val_records = limit_per_class(dataset.split("val"), config.limit_per_class)
    if not val_records:
        raise BinbotError("the dataset has no validation images; add a val split or more images")
    log(
        f"Dataset: {len(dataset.classes)} classes, {len(train_records)} train / "
        f"{len(val_records)} val / {len(dataset.split('test'))} test images ({dataset.layout})"
    )
    write_json(out / LABELS_FILE, dataset.classes)
    write_json(out / DATASET_FILE, dataset_summary(dataset, train_records, val_records))
    write_json(out / CONFIG_FILE, run_config(config))

    train_ds = make_dataset(
        train_records,
        batch_size=config.batch_size,
        training=True,
        augment=config.augment,
        seed=config.seed,
    )
    val_ds = make_dataset(val_records, batch_size=config.batch_size)
    weights = class_weights(train_records, len(dataset.classes))
    if weights:
        log(
            "Classes are imbalanced: using class weights "
            + ", ".join(f"{dataset.classes[i]}={w:.2f}" for i, w in weights.items())
        )

    model = build_model(
        len(dataset.classes),
        backbone=config.backbone,
        weights=config.weights,
        dense_units=config.dense_units,
        dropout=config.dropout,
    )
    checkpoint = out / CHECKPOINT_FILE
    checkpoint.parent.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, Any]] = []
    started = time.monotonic()
    steps_per_epoch = -(-len(train_records) // config.batch_size)

    phases = [
        ("head", config.head_epochs, config.head_learning_rate),
        ("fine-tune", config.fine_tune_epochs, config.fine_tune_learning_rate),
    ]
    for phase, epochs, learning_rate in phases:
        if epochs <= 0:
            continue
        if phase == "fine-tune":
            unfrozen = unfreeze_top(model, config.fine_tune_layers)
            which = config.fine_tune_layers or "all"
            log(
                f"Fine-tuning {which} backbone layers ({unfrozen} with weights), learning rate "
                f"{learning_rate:g} decaying to 0 over {epochs} epochs"
            )
            learning_rate = keras.optimizers.schedules.CosineDecay(
                learning_rate, decay_steps=epochs * steps_per_epoch
            )
        else:
            log(
                f"Training the head on the frozen {config.backbone} at learning rate "
                f"{learning_rate:g}"
            )
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        callbacks = [
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.patience, restore_best_weights=True
            ),
            keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True),
            EpochLog(phase, epochs, history, log),
        ]
        if should_stop is not None:
            callbacks.append(StopWhenAsked(should_stop))
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=epochs,
            class_weight=weights,
            callbacks=callbacks,
            verbose=0,
        )

    seconds = time.monotonic() - started
    if not checkpoint.exists():
        raise BinbotError("training produced no checkpoint (no epoch ran)")
    shutil.copyfile(checkpoint, out / MODEL_FILE)
    write_json(out / HISTORY_FILE, history)
    plot_training_curves(history, out / CURVES_FILE)
    best = min(h["val_loss"] for h in history if h["phase"] == history[-1]["phase"])
    log(f"Trained in {seconds / 60:.1f} min; best val_loss {best:.4f}; model at {out / MODEL_FILE}")
    return TrainResult(out, history, seconds, best)


def dataset_summary(
    dataset: Dataset, train_records: list[ImageRecord], val_records: list[ImageRecord]
) -> dict[str, Any]:
    return {
        "source": str(Path(dataset.source).resolve()),
        "fingerprint": dataset.fingerprint,
        "layout": dataset.layout,
        "classes": dataset.classes,
        "counts": dataset.counts(),
        "used_for_training": {"train": len(train_records), "val": len(val_records)},
        "skipped_files": [asdict(b) for b in dataset.bad_files],
        "warnings": dataset.warnings,
    }


def run_config(config: TrainConfig) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    from training import IMAGE_SIZE
    from training.preprocess import RESIZE_SPEC

    return {
        **asdict(config),
        "image_size": IMAGE_SIZE,
        "resize": RESIZE_SPEC,
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
    }
