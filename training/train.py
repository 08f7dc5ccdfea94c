"""Two-phase transfer learning on a frozen backbone's cached features.

Phase 1 trains the head on the pooled features of the frozen backbone; phase 2 fine-tunes the
top of the backbone with the head. The backbone below the fine-tuned part never changes, so
its work is done once per photo view and cached (``training.features``); both phases then
train on those features (``training.engine``), which makes an epoch cost seconds instead of
a minute, and a retraining on mostly known photos cost little more than its new ones.
Everything needed to reproduce or audit the run is written beside it.

Progress goes two ways: ``log`` gets lines for people, ``on_event`` gets the same facts as
data (``{"event": "phase" | "epoch", ...}``), which the retraining jobs store and show.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from binbot.errors import BinbotError
from binbot.files import holds_working_folder, refuse_if_being_written, staged_folder
from training.config import TrainConfig, untrainable_schedule
from training.dataset import (
    Dataset,
    ImageRecord,
    bad_file_lines,
    check_dataset_path,
    check_outside_dataset,
    load_dataset,
    progress_logger,
)
from training.run_dir import (
    CONFIG_FILE,
    CURVES_FILE,
    DATASET_FILE,
    HISTORY_FILE,
    LABELS_FILE,
    MODEL_FILE,
    OPENSET_FILE,
    warm_start_folder,
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
    kept: dict[str, float]  # val_accuracy and val_loss of the model written, not of an epoch
    dataset: Dataset  # what it was trained on: the evaluation after it reads the same split


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


def check_train_request(
    dataset_path: str | Path, out: Path, config: TrainConfig, overwrite: bool
) -> None:
    """Everything about a training request that its files and settings alone can refuse: the
    command line checks it before TensorFlow's import (seconds), ``train`` again."""
    if why := untrainable_schedule(config.head_epochs, config.fine_tune_epochs):
        raise BinbotError(why)
    check_run_target(out, overwrite, dataset_path)
    check_dataset_path(dataset_path)
    if config.warm_start:
        warm_start_folder(config.warm_start)
    if config.weights not in (None, "imagenet") and not Path(config.weights).is_file():
        raise BinbotError(
            f"--weights {config.weights}: no such file ('imagenet', 'none' or a weights file)"
        )


def check_run_target(out: Path, overwrite: bool, dataset_path: str | Path) -> None:
    """Refuse a run folder whose files are not a run's. A run written among other files mixed
    with them (``--out ~/Documents``), and one inside a dataset folder became a class of that
    dataset, which then failed for an empty class 'run'."""
    if out.exists() and not out.is_dir():
        raise BinbotError(f"--out must be a folder: {out}")
    if holds_working_folder(out):
        raise BinbotError(
            f"--out {out} is the folder you are in, or holds it: a run replaces its folder "
            "whole once it is written; name a folder in it instead (e.g. --out run)"
        )
    check_outside_dataset(out, dataset_path)
    refuse_if_being_written(out)
    if (out / MODEL_FILE).exists():
        if not overwrite:
            raise BinbotError(
                f"{out} already holds a trained model; choose another --out or --overwrite"
            )
    elif out.exists() and any(out.iterdir()) and not is_run_folder(out):
        raise BinbotError(
            f"--out {out} holds other files and is not a BinBot run: choose a new or empty "
            "folder (--overwrite replaces only a run)"
        )


def is_run_folder(folder: Path) -> bool:
    """A run's folder, also one stopped before its model was saved (BinBot before 2026-12-06
    wrote a run's first files into it before training started)."""
    return all((folder / name).is_file() for name in (LABELS_FILE, CONFIG_FILE, DATASET_FILE))


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
    check_train_request(
        dataset.source if dataset is not None else dataset_path, out, config, overwrite
    )
    out.parent.mkdir(parents=True, exist_ok=True)  # a folder that cannot be made fails now
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
    # The run is written into a folder beside ``out`` that replaces it once complete: a full
    # disk, a Ctrl-C or a cancelled job leaves ``out`` as it was (the earlier run, under
    # --overwrite), never a cut model.keras, or new labels beside an old model.
    with staged_folder(out, exclusive=True) as staging:
        write_json(staging / LABELS_FILE, dataset.classes)
        write_json(staging / DATASET_FILE, dataset_summary(dataset, train_records, val_records))
        write_json(staging / CONFIG_FILE, run_config(config))

        started = time.monotonic()
        history, kept = _fit_phases(
            config, dataset, train_records, val_records, staging, log, should_stop, on_event
        )
        seconds = time.monotonic() - started
        _write_history(staging, history)
    log(
        f"Trained in {seconds / 60:.1f} min; the model kept: val_loss {kept['val_loss']:.4f}, "
        f"val_acc {kept['val_accuracy']:.4f}; model at {out / MODEL_FILE}"
    )
    return TrainResult(out, history, seconds, kept, dataset)


def _read_dataset(
    dataset: Dataset | None, path: str | Path, config: TrainConfig, log: Log
) -> Dataset:
    if dataset is None:
        log(f"Reading dataset {path} ...")
        dataset = load_dataset(path, seed=config.seed, progress=progress_logger(log))
    for line in bad_file_lines(dataset.bad_files, f"the run's {DATASET_FILE}"):
        log(f"  skipped {line}")
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
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Build the model, compute the frozen features, run both phases; returns the history and
    the kept model's validation figures."""
    from training.engine import FeatureTrainer
    from training.model import build_model, split_model
    from training.pipeline import class_weights

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
    if config.warm_start:
        from training.warm_start import warm_start

        started = warm_start(model, dataset.classes, warm_start_folder(config.warm_start), log)
        if not started and config.head_epochs == 0:
            # A schedule without phase 1 assumed a trained head; fine-tuning a head that starts
            # from scratch would knock the pretrained layers about (see training.engine).
            config = replace(config, head_epochs=TrainConfig().head_epochs)
            log(f"  so the new head is trained first: {config.head_epochs} head epochs")
    parts = split_model(model, config.fine_tune_layers)
    trainer = FeatureTrainer(model, parts, config, len(dataset.classes), weights, log, on_event)
    trainer.load_features(train_records, val_records)
    phases = [p for p in (("head", config.head_epochs), ("fine-tune", config.fine_tune_epochs))
              if p[1] > 0]  # fmt: skip
    for index, (phase, epochs) in enumerate(phases):
        later = sum(e for _, e in phases[index + 1 :])
        if on_event:
            on_event({"event": "phase", "phase": phase, "epochs": epochs, "later_epochs": later})
        trainer.run_phase(phase, epochs, should_stop)
    model.save(out / MODEL_FILE)
    val_embeddings, val_probabilities = trainer.validation_outputs()
    scorer = trainer.open_set(
        np.array([r.label for r in train_records]), val_embeddings, val_probabilities
    )
    write_json(out / OPENSET_FILE, scorer.to_json())
    log(f"Open-set score: {scorer.method}, threshold {scorer.threshold:.4f} (accepts 95% of val)")
    return trainer.history, trainer.kept_scores(val_probabilities)


def _write_history(folder: Path, history: list[dict[str, Any]]) -> None:
    """Write the history and its curves beside the trained model."""
    from training.plots import plot_training_curves

    write_json(folder / HISTORY_FILE, history)
    plot_training_curves(history, folder / CURVES_FILE)


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
