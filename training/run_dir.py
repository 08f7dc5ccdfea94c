"""The layout of a training run folder, and loading one back with a clear error when it is not."""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from binbot.errors import BinbotError
from binbot.files import replacing

MODEL_FILE = "model.keras"
CHECKPOINT_FILE = "checkpoints/best.keras"
LABELS_FILE = "labels.json"
CONFIG_FILE = "config.json"
DATASET_FILE = "dataset.json"
HISTORY_FILE = "history.json"
CURVES_FILE = "training_curves.png"
EVALUATION_DIR = "evaluation"
OPENSET_FILE = "openset.json"


def keras_model_folder(folder: Path) -> Path | None:
    """Where the Keras model of ``folder`` would be: the folder itself (a run), or a bundle's
    ``keras/``; None for a bundle without one (the starter in git). From the files alone."""
    from conversion.manifest import MANIFEST_FILE, WARM_START_DIR

    if not (folder / MANIFEST_FILE).is_file():
        return folder
    inner = folder / WARM_START_DIR
    return inner if (inner / MODEL_FILE).is_file() else None


def warm_start_folder(path: str | Path) -> Path:
    """The folder of the model that ``--warm-start`` names: a run folder, or a bundle (its
    ``keras/`` folder). BinbotError when it holds none: a mistyped path trained from ImageNet
    alone for minutes, with one line in the log to say so."""
    folder = Path(path)
    if not folder.exists():
        raise BinbotError(f"--warm-start {folder}: no such folder")
    model = keras_model_folder(folder)
    if model is None:
        raise BinbotError(
            f"--warm-start {folder} is a bundle without its Keras model (its keras/ folder; "
            "the starter in git has none): start from a run folder, or from a bundle "
            "`binbot convert` wrote"
        )
    if not (model / MODEL_FILE).is_file() or not (model / LABELS_FILE).is_file():
        raise BinbotError(
            f"--warm-start {folder} holds no model: give a run folder ({MODEL_FILE} and "
            f"{LABELS_FILE}) or a bundle"
        )
    return model


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` whole or not at all (a full disk leaves the file as it was)."""
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    with replacing(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass
class Run:
    """A trained run: its folder, the Keras model and the labels in output order."""

    path: Path
    model: Any
    labels: list[str]

    def read(self, name: str) -> Any:
        file = self.path / name
        return read_json(file) if file.exists() else None


def check_run_folder(path: str | Path) -> list[str]:
    """The labels of the run folder ``path``, or a BinbotError saying what is wrong with it,
    from its files alone: the command line checks this before TensorFlow's import, which takes
    seconds, so that a mistyped folder is said at once."""
    folder = Path(path)
    if not folder.exists():
        raise BinbotError(f"run folder not found: {folder}")
    if not folder.is_dir():
        raise BinbotError(f"not a run folder (it is a file): {folder}")
    model_file, labels_file = folder / MODEL_FILE, folder / LABELS_FILE
    if not model_file.exists() or not labels_file.exists():
        raise BinbotError(
            f"not a BinBot run folder: {folder} has no {MODEL_FILE} and {LABELS_FILE} "
            "(create one with `binbot train`)"
        )
    try:
        labels = read_json(labels_file)
    except (ValueError, OSError) as exc:
        raise BinbotError(f"unreadable {labels_file}: {exc}") from None
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise BinbotError(f"{labels_file} must be a JSON list of class names")
    if not zipfile.is_zipfile(model_file):
        raise BinbotError(f"{model_file} is not a Keras model file (corrupt or not a .keras zip)")
    return labels


def load_run(path: str | Path) -> Run:
    """Load ``model.keras`` and ``labels.json`` from a run folder, or explain what is wrong."""
    folder = Path(path)
    labels = check_run_folder(folder)
    model_file, labels_file = folder / MODEL_FILE, folder / LABELS_FILE

    import keras

    try:
        model = keras.models.load_model(model_file, compile=False)
    except Exception as exc:  # keras raises many types for a broken file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BinbotError(f"cannot load {model_file}: {first_line}") from None
    classes = model.output_shape[-1]
    if classes != len(labels):
        raise BinbotError(
            f"{model_file} predicts {classes} classes but {labels_file} names {len(labels)}"
        )
    return Run(folder, model, labels)


def dataset_of_run(run: Run, dataset: Any = None) -> Any:
    """``dataset`` (a Dataset, or a path to load), or else the one the run was trained on.

    Its classes must be the run's, in the same order: a model's outputs mean nothing on
    another label set.
    """
    from training.dataset import Dataset, load_dataset

    if dataset is None:
        source = (run.read(DATASET_FILE) or {}).get("source")
        if not source or not Path(source).exists():
            raise BinbotError(
                f"the dataset this run was trained on is not at {source!r}; pass the dataset"
            )
        dataset = source
    if not isinstance(dataset, Dataset):
        # With the run's seed: flat class folders are split here, and under the default seed a
        # run trained with --seed 7 was scored on test photos it had trained on (35 of 48).
        seed = (run.read(CONFIG_FILE) or {}).get("seed", 42)
        dataset = load_dataset(dataset, seed=seed)
    if dataset.classes != run.labels:
        raise BinbotError(
            f"the dataset's classes {dataset.classes} differ from the model's {run.labels}"
        )
    return dataset
