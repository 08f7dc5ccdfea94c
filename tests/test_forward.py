"""The compiled forward pass: traced once per model, current weights, no model kept alive."""

from __future__ import annotations

import gc
import weakref

import numpy as np

from training.forward import compiled


def _small_model():
    import keras

    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def test_a_model_is_traced_once_reads_its_current_weights_and_is_not_kept_alive():
    model = _small_model()
    forward = compiled(model)
    assert compiled(model) is forward  # train and validation features share one trace
    x = np.ones((3, 4), np.float32)
    before = np.asarray(forward(x))
    model.layers[-1].kernel.assign(np.zeros((4, 2), np.float32))  # as training changes it
    after = np.asarray(forward(x))
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, np.broadcast_to(model.layers[-1].bias.numpy(), (3, 2)))

    # A retraining worker runs job after job: a finished job's model must be freed.
    gone = weakref.ref(model)
    del model, forward
    gc.collect()
    assert gone() is None
