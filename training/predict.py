"""Top-k predictions for image files, preprocessed exactly as in training (Keras) or as in the
web app (a bundle without its Keras model, run in TF.js)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from binbot.errors import BinbotError
from training.dataset import ImageRecord, check_image
from training.run_dir import (
    MODEL_FILE,
    OPENSET_FILE,
    Run,
    check_run_folder,
    keras_model_folder,
    load_run,
    read_json,
)

if TYPE_CHECKING:
    from training.openset import OpenSet


@dataclass
class Prediction:
    path: Path
    top: list[tuple[str, float]]
    # known | unsure | unknown, as the web app says it (unknown: not one of the model's kinds)
    verdict: str


@dataclass
class BundlePredictor:
    """A converted bundle without its Keras model, such as the starter in git: its graph runs
    in Node with the web app's own TF.js runtime and preprocessing, so its answers are the
    ones phones give."""

    path: Path
    labels: list[str]


def predictor_run_folder(path: str | Path) -> Path | None:
    """The run folder that holds the Keras model of ``path`` (a run, or a bundle's
    ``keras/``), or None for a bundle without one, which then runs in TF.js. Checked from its
    files alone (before TensorFlow's import, on the command line)."""
    from conversion.manifest import MANIFEST_FILE, check_bundle

    folder = Path(path)
    model = keras_model_folder(folder)
    if model is None:
        if problems := check_bundle(folder):
            raise BinbotError(f"{folder} is not a usable model bundle: {problems[0]}")
        return None
    if model == folder and folder.is_dir() and not (folder / MODEL_FILE).is_file():
        raise BinbotError(
            f"not a BinBot run folder or model bundle: {folder} has neither {MODEL_FILE} "
            f"(`binbot train` writes one) nor {MANIFEST_FILE} (`binbot convert`)"
        )
    check_run_folder(model)
    return model


def load_predictor(path: str | Path) -> Run | BundlePredictor:
    """A run folder, or a bundle written by ``binbot convert``: a bundle keeps its Keras model
    in ``keras/`` (for warm starts) and its open-set score beside its manifest, so its verdicts
    are the ones phones give. A bundle without ``keras/`` runs in TF.js instead."""
    from conversion.manifest import read_manifest

    folder = predictor_run_folder(path)
    if folder is None:
        return BundlePredictor(Path(path), read_manifest(Path(path))["labels"])
    run = load_run(folder)
    return Run(Path(path), run.model, run.labels)


def files_to_predict(paths: list[Path]) -> list[Path]:
    """The paths given, with a folder replaced by the files in it (nested ones too, hidden
    ones left out, in name order), so that a folder of photos can be classified at once."""
    from training.dataset_layout import files_in

    out: list[Path] = []
    for path in paths:
        out.extend(files_in(path) if path.is_dir() else [path])
    return out


def predict_files(
    predictor: Run | BundlePredictor, paths: list[Path], k: int = 3
) -> Iterator[Prediction | BinbotError]:
    """One Prediction per decodable file; a BinbotError in its place for a file that is not.
    Each comes as soon as it is known, so that a folder of thousands of photos shows its
    answers as they come rather than after minutes of silence.

    The verdict uses the model's open-set score (``openset.json``) when it has one, so that
    the command line says "not recognised" where the app would."""
    scorer = open_set_of(predictor.path)
    if isinstance(predictor, BundlePredictor):
        yield from _predict_in_tfjs(predictor, scorer, paths, k)
        return
    import tensorflow as tf

    from training.forward import compiled
    from training.model import serving_model
    from training.preprocess import load_for_model

    model = serving_model(predictor.model)  # held here: the compiled call holds it only weakly
    serving = compiled(model)
    for checked in checked_files(paths):
        if isinstance(checked, BinbotError):
            yield checked
            continue
        image = load_for_model(tf.constant(str(checked.path)), tf.constant(checked.orientation))
        outputs = serving(image[None])
        probabilities = np.asarray(outputs["probabilities"])[0]
        embedding = np.asarray(outputs["embedding"])[0]
        yield prediction(checked.path, predictor.labels, scorer, probabilities, embedding, k)


def open_set_of(folder: Path) -> OpenSet | None:
    """The open-set score saved beside the model (a run's or a bundle's), if it has one."""
    from training.openset import OpenSet

    try:
        saved = read_json(folder / OPENSET_FILE) if (folder / OPENSET_FILE).is_file() else None
        return OpenSet.from_json(saved) if saved else None
    except (ValueError, KeyError, TypeError) as exc:
        raise BinbotError(f"unreadable {folder / OPENSET_FILE}: {exc!r}") from None


def checked_files(paths: list[Path]) -> Iterator[ImageRecord | BinbotError]:
    """Each file to classify as a record (its EXIF orientation read), or why it cannot be."""
    for path in files_to_predict(paths):
        if not path.exists():
            yield BinbotError(f"image not found: {path}")
            continue
        checked = check_image(path)  # also a named pipe or device: it says so, unread
        if isinstance(checked, str):
            yield BinbotError(f"{path}: {checked}")
            continue
        sha256, width, height, orientation = checked
        yield ImageRecord(path, path.name, "predict", -1, sha256, width, height, orientation)


def prediction(
    path: Path,
    labels: list[str],
    scorer: OpenSet | None,
    probabilities: np.ndarray,
    embedding: np.ndarray,
    k: int,
) -> Prediction:
    from training.openset import verdict

    best = np.argsort(probabilities)[::-1][:k]
    top = [(labels[i], float(probabilities[i])) for i in best]
    return Prediction(path, top, verdict(scorer, embedding, probabilities))


# Photos per Node.js run: the first answers come after about a second, and a run's decoded
# pixels stay a few hundred megabytes at most even for large photos.
TFJS_PHOTOS_PER_RUN = 16
TFJS_PIXELS_PER_RUN = 50_000_000


def _predict_in_tfjs(
    bundle: BundlePredictor, scorer: OpenSet | None, paths: list[Path], k: int
) -> Iterator[Prediction | BinbotError]:
    """The bundle's graph in Node (wasm), a few photos per run."""
    from conversion.verify import run_tfjs

    signature = read_json(bundle.path / "model.json")["signature"]

    def run(batch: list[ImageRecord | BinbotError]) -> Iterator[Prediction | BinbotError]:
        photos = [r for r in batch if isinstance(r, ImageRecord)]
        outputs = run_tfjs(bundle.path, photos, signature, warmup=0) if photos else {}
        answers = zip(outputs.get("probabilities", []), outputs.get("embeddings", []), strict=True)
        for item in batch:
            if isinstance(item, BinbotError):
                yield item
                continue
            probabilities, embedding = next(answers)
            yield prediction(
                item.path, bundle.labels, scorer, np.asarray(probabilities),
                np.asarray(embedding, dtype=np.float32), k,
            )  # fmt: skip

    # Files that cannot be read keep their place among the answers, as with Keras.
    batch: list[ImageRecord | BinbotError] = []
    photos = pixels = 0
    for checked in checked_files(paths):
        batch.append(checked)
        if isinstance(checked, ImageRecord):
            photos, pixels = photos + 1, pixels + checked.width * checked.height
        if photos == TFJS_PHOTOS_PER_RUN or pixels >= TFJS_PIXELS_PER_RUN:
            yield from run(batch)
            batch, photos, pixels = [], 0, 0
    if batch:
        yield from run(batch)
