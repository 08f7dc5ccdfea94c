"""Find a base-dataset test image by content hash, for the model comparison's thumbnails.

Evaluations record each test image's sha256; the base dataset (BINBOT_BASE_DATASET) holds the
files. It is indexed once per process: validating 3000 images takes a few seconds.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from flask import current_app

from server.errors import NotFound


@lru_cache(maxsize=4)
def _index(dataset_path: str) -> dict[str, Path]:
    from training.dataset import load_dataset

    dataset = load_dataset(dataset_path)
    return {r.sha256: r.path for r in dataset.split("test")}


def base_test_image(sha256: str) -> Path:
    """The base dataset's test image with this content hash; NotFound when there is none."""
    source = current_app.config.get("BINBOT_BASE_DATASET")
    found = _index(str(source)).get(sha256) if source and Path(source).exists() else None
    if found is None:
        raise NotFound("no such test image in the base dataset")
    return found
