"""Top-k predictions for image files, preprocessed exactly as in training."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from binbot.errors import BinbotError
from training.dataset import check_image
from training.run_dir import MODEL_FILE, OPENSET_FILE, Run, check_run_folder, load_run


@dataclass
class Prediction:
    path: Path
    top: list[tuple[str, float]]
    # known | unsure | unknown, as the web app says it (unknown: not one of the model's kinds)
    verdict: str


def predictor_run_folder(path: str | Path) -> Path:
    """The run folder that holds the Keras model of ``path`` (a run, or a bundle's
    ``keras/``), checked from its files alone (before TensorFlow's import, on the command
    line)."""
    from conversion.manifest import MANIFEST_FILE, WARM_START_DIR

    folder = Path(path)
    if (folder / MANIFEST_FILE).is_file():
        if not (folder / WARM_START_DIR / MODEL_FILE).is_file():
            raise BinbotError(
                f"{folder} is a TF.js bundle without its Keras model ({WARM_START_DIR}/"
                f"{MODEL_FILE}; git does not carry the starter's): predict needs a run folder "
                "or a bundle as `binbot convert` writes it"
            )
        folder = folder / WARM_START_DIR
    check_run_folder(folder)
    return folder


def load_predictor(path: str | Path) -> Run:
    """A run folder, or a bundle written by ``binbot convert``: a bundle keeps its Keras model
    in ``keras/`` (for warm starts) and its open-set score beside its manifest, so its verdicts
    are the ones phones give."""
    run = load_run(predictor_run_folder(path))
    return Run(Path(path), run.model, run.labels)


def files_to_predict(paths: list[Path]) -> list[Path]:
    """The paths given, with a folder replaced by the files in it (nested ones too, hidden
    ones left out, in name order), so that a folder of photos can be classified at once."""
    from training.dataset_layout import files_in

    out: list[Path] = []
    for path in paths:
        out.extend(files_in(path) if path.is_dir() else [path])
    return out


def predict_files(run: Run, paths: list[Path], k: int = 3) -> Iterator[Prediction | BinbotError]:
    """One Prediction per decodable file; a BinbotError in its place for a file that is not.
    Each comes as soon as it is known, so that a folder of thousands of photos shows its
    answers as they come rather than after minutes of silence.

    The verdict uses the run's open-set score (``openset.json``) when it has one, so that the
    command line says "not recognised" where the app would."""
    import tensorflow as tf

    from training.forward import compiled
    from training.model import serving_model
    from training.openset import OpenSet, verdict
    from training.preprocess import load_for_model

    try:
        saved = run.read(OPENSET_FILE)
        scorer = OpenSet.from_json(saved) if saved else None
    except (ValueError, KeyError, TypeError) as exc:
        raise BinbotError(f"unreadable {run.path / OPENSET_FILE}: {exc!r}") from None
    model = serving_model(run.model)  # held here: the compiled call holds it only weakly
    serving = compiled(model)
    for path in files_to_predict(paths):
        if not path.exists():
            yield BinbotError(f"image not found: {path}")
            continue
        checked = check_image(path)  # also a named pipe or device: it says so, unread
        if isinstance(checked, str):
            yield BinbotError(f"{path}: {checked}")
            continue
        orientation = checked[3]
        image = load_for_model(tf.constant(str(path)), tf.constant(orientation))
        outputs = serving(image[None])
        probabilities = np.asarray(outputs["probabilities"])[0]
        embedding = np.asarray(outputs["embedding"])[0]
        best = np.argsort(probabilities)[::-1][:k]
        top = [(run.labels[i], float(probabilities[i])) for i in best]
        yield Prediction(path, top, verdict(scorer, embedding, probabilities))
