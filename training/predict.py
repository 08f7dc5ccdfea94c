"""Top-k predictions for image files, preprocessed exactly as in training."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from binbot.errors import BinbotError
from training.dataset import check_image
from training.run_dir import Run


@dataclass
class Prediction:
    path: Path
    top: list[tuple[str, float]]


def predict_files(run: Run, paths: list[Path], k: int = 3) -> list[Prediction | BinbotError]:
    """One Prediction per decodable file; a BinbotError in its place for a file that is not."""
    import tensorflow as tf

    from training.preprocess import load_for_model

    results: list[Prediction | BinbotError] = []
    for path in paths:
        if not path.is_file():
            results.append(BinbotError(f"image not found: {path}"))
            continue
        checked = check_image(path)
        if isinstance(checked, str):
            results.append(BinbotError(f"{path}: {checked}"))
            continue
        orientation = checked[3]
        image = load_for_model(tf.constant(str(path)), tf.constant(orientation))
        probabilities = run.model.predict(image[None], verbose=0)[0]
        best = np.argsort(probabilities)[::-1][:k]
        results.append(Prediction(path, [(run.labels[i], float(probabilities[i])) for i in best]))
    return results
