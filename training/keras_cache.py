"""Seed Keras' weights cache from a local folder, for machines that reach no model hub.

Product code keeps ``weights="imagenet"``; Keras looks in ``$KERAS_HOME/models/`` before it
downloads, so linking the shipped file there is all it takes. Must run before ``import keras``.
"""

from __future__ import annotations

import os
from pathlib import Path


def seed_keras_cache(
    weights_dir: str | os.PathLike[str] | None, keras_home: str | os.PathLike[str]
) -> Path:
    """Link every ``*.h5`` in ``weights_dir`` into ``keras_home/models`` and set KERAS_HOME."""
    home = Path(keras_home)
    models = home / "models"
    models.mkdir(parents=True, exist_ok=True)
    if weights_dir:
        for source in Path(weights_dir).glob("*.h5"):
            target = models / source.name
            if not target.exists():
                target.symlink_to(source.resolve())
    os.environ["KERAS_HOME"] = str(home)
    return home
