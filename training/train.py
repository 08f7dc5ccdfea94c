"""Two-phase transfer learning: train the head on the frozen backbone, then fine-tune its top.

Both phases stop early on validation loss and restore their best weights. Fine-tuning uses a
cosine learning-rate decay to zero, so the backbone settles instead of jittering around a
high rate. The checkpoint keeps each phase's best epoch; fine-tuning starts from the head
phase's best, so its best epoch is the run's ``model.keras`` (the head's when fine-tuning is
off). Choosing across phases by validation loss instead would let the noise of a small
validation split throw the fine-tuning away. Everything needed to reproduce
or audit the run is written beside it.

Progress goes two ways: ``log`` gets lines for people, ``on_event`` gets the same facts as
data (``{"event": "phase" | "epoch", ...}``), which the retraining jobs store and show.
"""

from __future__ import annotations

import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from binbot.errors import BinbotError
from training.config import TrainConfig
from training.dataset import Dataset, ImageRecord, load_dataset, progress_logger
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
OnEvent = Callable[[dict[str, Any]], None]

__all__ = ["TrainConfig", "TrainResult", "train"]


@dataclass
class TrainResult:
    run_dir: Path
    history: list[dict[str, Any]]
    seconds: float
    best_val_loss: float


@dataclass
class Phase:
    name: str  # "head" | "fine-tune"
    epochs: int
    learning_rate: float


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
    on_event: OnEvent | None = None,
) -> TrainResult:
    """Train a classifier on ``dataset_path`` and write the run folder ``out``.

    ``should_stop`` is polled after every batch; when it returns true, training raises
    TrainingCancelled (a retraining job an admin cancelled).
    """
    config = config or TrainConfig()
    out = Path(out)
    prepare_run_dir(out, overwrite)
    dataset = _read_dataset(dataset, dataset_path, config, log)

    import keras

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

    started = time.monotonic()
    history = _fit_phases(
        config, dataset, train_records, val_records, out, log, should_stop, on_event
    )
    seconds = time.monotonic() - started
    return _finish_run(out, history, seconds, log)


def _read_dataset(
    dataset: Dataset | None, path: str | Path, config: TrainConfig, log: Log
) -> Dataset:
    if dataset is None:
        log(f"Reading dataset {path} ...")
        dataset = load_dataset(path, seed=config.seed, progress=progress_logger(log))
    for bad in dataset.bad_files:
        log(f"  skipped {bad.relpath}: {bad.reason}")
    for warning in dataset.warnings:
        log(f"  warning: {warning}")
    return dataset


def _fit_phases(
    config: TrainConfig,
    dataset: Dataset,
    train_records: list[ImageRecord],
    val_records: list[ImageRecord],
    out: Path,
    log: Log,
    should_stop: Callable[[], bool] | None,
    on_event: OnEvent | None,
) -> list[dict[str, Any]]:
    """Build the model and run the head and fine-tuning phases; returns the epoch history."""
    from training.model import build_model
    from training.pipeline import class_weights, make_dataset

    weights = class_weights(train_records, len(dataset.classes))
    if weights:
        log(
            "Classes are imbalanced: using class weights "
            + ", ".join(f"{dataset.classes[i]}={w:.2f}" for i, w in weights.items())
        )
    model = build_model(
        len(dataset.classes), backbone=config.backbone, weights=config.weights,
        dense_units=config.dense_units, dropout=config.dropout,
    )  # fmt: skip
    fitter = PhaseFitter(
        model, config, out, log, should_stop, on_event,
        train_ds=make_dataset(train_records, batch_size=config.batch_size, training=True,
                              augment=config.augment, seed=config.seed),
        val_ds=make_dataset(val_records, batch_size=config.batch_size),
        class_weights=weights,
        steps_per_epoch=-(-len(train_records) // config.batch_size),
    )  # fmt: skip
    phases = [
        Phase("head", config.head_epochs, config.head_learning_rate),
        Phase("fine-tune", config.fine_tune_epochs, config.fine_tune_learning_rate),
    ]
    phases = [p for p in phases if p.epochs > 0]
    for index, phase in enumerate(phases):
        fitter.fit(phase, later_epochs=sum(p.epochs for p in phases[index + 1 :]))
    return fitter.history


@dataclass
class PhaseFitter:
    """Runs one phase after another on the same model, collecting one history."""

    model: Any
    config: TrainConfig
    out: Path
    log: Log
    should_stop: Callable[[], bool] | None
    on_event: OnEvent | None
    train_ds: Any
    val_ds: Any
    class_weights: dict[int, float] | None
    steps_per_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)

    def fit(self, phase: Phase, later_epochs: int) -> None:
        import keras

        from training.callbacks import EpochLog, StopWhenAsked

        if self.on_event:
            self.on_event(
                {"event": "phase", "phase": phase.name, "epochs": phase.epochs,
                 "later_epochs": later_epochs, "steps_per_epoch": self.steps_per_epoch}
            )  # fmt: skip
        self.model.compile(
            optimizer=keras.optimizers.Adam(self.learning_rate(phase)),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
        callbacks = [
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=self.config.patience, restore_best_weights=True
            ),
            keras.callbacks.ModelCheckpoint(
                self.out / CHECKPOINT_FILE, monitor="val_loss", save_best_only=True
            ),
            EpochLog(phase.name, phase.epochs, self.history, self.log, self.on_event),
        ]
        if self.should_stop is not None:
            callbacks.append(StopWhenAsked(self.should_stop))
        (self.out / CHECKPOINT_FILE).parent.mkdir(parents=True, exist_ok=True)
        self.model.fit(
            self.train_ds, validation_data=self.val_ds, epochs=phase.epochs,
            class_weight=self.class_weights, callbacks=callbacks, verbose=0,
        )  # fmt: skip

    def learning_rate(self, phase: Phase) -> Any:
        """The head's constant rate; fine-tuning unfreezes the backbone and decays to 0."""
        import keras

        from training.model import unfreeze_top

        if phase.name != "fine-tune":
            self.log(
                f"Training the head on the frozen {self.config.backbone} at learning rate "
                f"{phase.learning_rate:g}"
            )
            return phase.learning_rate
        layers = self.config.fine_tune_layers
        unfrozen = unfreeze_top(self.model, layers)
        self.log(
            f"Fine-tuning {layers or 'all'} backbone layers ({unfrozen} with weights), learning "
            f"rate {phase.learning_rate:g} decaying to 0 over {phase.epochs} epochs"
        )
        return keras.optimizers.schedules.CosineDecay(
            phase.learning_rate, decay_steps=phase.epochs * self.steps_per_epoch
        )


def _finish_run(out: Path, history: list[dict[str, Any]], seconds: float, log: Log) -> TrainResult:
    """Keep the best checkpoint as the run's model; write the history and its curves."""
    from training.plots import plot_training_curves

    checkpoint = out / CHECKPOINT_FILE
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
    from training.preprocess import RESIZE_RECIPE

    return {
        **asdict(config),
        "image_size": IMAGE_SIZE,
        "resize": RESIZE_RECIPE,
        "versions": {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
    }
