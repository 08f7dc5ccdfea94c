"""Start training from an earlier model instead of ImageNet alone (fast retraining).

The earlier model's weights are copied layer by layer into the new one. Its output layer is
copied class by class, by name: a class both know keeps what it learned, a class only the new
label set has (a kind added since) starts from scratch, and a class the earlier model had but
the new set lacks is dropped. A model that does not fit (another backbone or head) is not
used, and training says so and starts from ImageNet.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np

from binbot.errors import BinbotError
from training.model import backbone_of
from training.run_dir import LABELS_FILE, MODEL_FILE, load_run

Log = Callable[[str], None]
OUTPUT_LAYER = "probabilities"


def load_earlier(folder: Path) -> tuple[keras.Model, list[str]] | None:
    """The model and labels kept in ``folder`` (a run, or a bundle's ``keras/``), if any;
    BinbotError saying why when they are there but unusable (a corrupt model or labels file
    stopped the training with a traceback)."""
    if not (folder / MODEL_FILE).is_file() or not (folder / LABELS_FILE).is_file():
        return None
    run = load_run(folder)
    return run.model, run.labels


def warm_start(model: keras.Model, labels: list[str], folder: Path, log: Log) -> bool:
    """Copy what fits from the model in ``folder`` into ``model``; True when it was used."""
    try:
        earlier = load_earlier(folder)
    except BinbotError as exc:
        log(f"WARNING: cannot start from {folder} ({exc}): training from ImageNet")
        return False
    if earlier is None:
        log(f"No model to start from in {folder}: training from ImageNet")
        return False
    old, old_labels = earlier
    problem = _mismatch(model, old)
    if problem:
        log(f"WARNING: cannot start from {folder} ({problem}): training from ImageNet")
        return False
    backbone_of(model).set_weights(backbone_of(old).get_weights())
    for layer in model.layers[model.layers.index(model.get_layer("embedding")) + 1 :]:
        if layer.name == OUTPUT_LAYER:
            _copy_output_rows(layer, old.get_layer(OUTPUT_LAYER), labels, old_labels)
        elif layer.weights:
            layer.set_weights(old.get_layer(layer.name).get_weights())
    kept = [label for label in labels if label in old_labels]
    new = [label for label in labels if label not in old_labels]
    log(
        f"Starting from the model in {folder}: {len(kept)} classes carried over"
        + (f", new: {', '.join(new)}" if new else "")
    )
    return True


def _mismatch(model: keras.Model, old: keras.Model) -> str | None:
    if model.name != old.name:
        return f"its architecture is {old.name}, not {model.name}"
    shapes = {w.path: tuple(w.shape) for w in model.weights if OUTPUT_LAYER not in w.path}
    old_shapes = {w.path: tuple(w.shape) for w in old.weights if OUTPUT_LAYER not in w.path}
    if shapes != old_shapes:
        return "its layers differ (another head?)"
    return None


def _copy_output_rows(layer, old_layer, labels: list[str], old_labels: list[str]) -> None:
    kernel, bias = (np.array(w) for w in layer.get_weights())
    old_kernel, old_bias = old_layer.get_weights()
    for index, label in enumerate(labels):
        if label in old_labels:
            kernel[:, index] = old_kernel[:, old_labels.index(label)]
            bias[index] = old_bias[old_labels.index(label)]
    layer.set_weights([kernel, bias])
