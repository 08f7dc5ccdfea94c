"""Keras model -> SavedModel with the serving signature the web client relies on.

Keras 3 models do not convert to TF.js *layers* models that load, so conversion goes through
a SavedModel and the TF.js *graph* converter. The signature is the contract: one input
``image`` (float32 [batch, 224, 224, 3], raw RGB 0..255; the scaling is inside the model) and
two outputs, ``probabilities`` [batch, classes] and ``embedding`` (the pooled features, for
later on-device use).
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from conversion.fold import folded_for_export
from training import IMAGE_SIZE
from training.model import serving_model

INPUT_NAME = "image"
OUTPUT_NAMES = ("probabilities", "embedding")
SIGNATURE = "serving_default"


def export_saved_model(model: keras.Model, out: Path) -> Path:
    """Write a SavedModel whose ``serving_default`` signature is image -> {probabilities, embedding}.

    The graph is the model with its batch normalisations folded (``conversion.fold``)."""
    serving = serving_model(folded_for_export(model)[0])
    archive = keras.export.ExportArchive()
    archive.track(serving)
    spec = tf.TensorSpec([None, IMAGE_SIZE, IMAGE_SIZE, 3], tf.float32, name=INPUT_NAME)

    def serve(image):
        outputs = serving(image, training=False)
        return {name: tf.identity(outputs[name], name=name) for name in OUTPUT_NAMES}

    archive.add_endpoint(name=SIGNATURE, fn=serve, input_signature=[spec])
    archive.write_out(str(out), verbose=False)
    return out
