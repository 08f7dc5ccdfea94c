"""Batch normalisation folded into convolutions for the exported graph: same answers, fewer ops."""

from __future__ import annotations

import keras
import numpy as np

from conversion.fold import FoldedAway, folded_for_export


def _trained_norm(norm: keras.layers.BatchNormalization, rng: np.random.Generator) -> None:
    """Statistics far from the defaults, so a fold that ignored any of them would show."""
    channels = norm.gamma.shape[0]
    norm.set_weights([
        rng.uniform(0.5, 2.0, channels), rng.normal(0, 1, channels),  # gamma, beta
        rng.normal(0, 1, channels), rng.uniform(0.1, 3.0, channels),  # mean, variance
    ])  # fmt: skip


def _model_with_a_nested_backbone() -> keras.Model:
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False, name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.ZeroPadding2D(((0, 1), (0, 1)), name="dw_pad")(x)  # = "same" at stride 2
    x = keras.layers.DepthwiseConv2D(3, strides=2, depth_multiplier=2, name="dw")(x)
    x = keras.layers.BatchNormalization(name="dw_bn")(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.ZeroPadding2D(((1, 0), (1, 0)), name="odd_pad")(x)  # no "same" pads so
    x = keras.layers.Conv2D(16, 2, name="after_odd_pad")(x)
    branch = keras.layers.Conv2D(16, 1, activation="relu", name="activated")(x)
    branch = keras.layers.BatchNormalization(name="activated_bn")(branch)  # not foldable
    backbone = keras.Model(inputs, keras.layers.Add()([x, branch]), name="backbone")

    image = keras.Input((16, 16, 3), name="image")
    pooled = keras.layers.GlobalAveragePooling2D(name="embedding")(backbone(image, training=False))
    return keras.Model(image, keras.layers.Dense(4, activation="softmax")(pooled))


def test_folding_keeps_the_answers_and_only_folds_what_folds_exactly():
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    model = _model_with_a_nested_backbone()
    for layer in model.get_layer("backbone").layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            _trained_norm(layer, rng)
    images = rng.uniform(0, 1, (5, 16, 16, 3)).astype("float32")

    folded, count = folded_for_export(model)

    # Two norms (stem, depthwise) and one padding; the convolution with its own ReLU keeps
    # its norm, the padding that "same" would not reproduce stays.
    assert count == 3
    backbone = folded.get_layer("backbone")
    for name in ("stem_bn", "dw_bn", "dw_pad"):
        assert isinstance(backbone.get_layer(name), FoldedAway)
    assert backbone.get_layer("dw").padding == "same"
    assert isinstance(backbone.get_layer("odd_pad"), keras.layers.ZeroPadding2D)
    assert isinstance(backbone.get_layer("activated_bn"), keras.layers.BatchNormalization)
    np.testing.assert_allclose(folded.predict(images, verbose=0), model.predict(images, verbose=0),
                               atol=1e-5)  # fmt: skip
    # The run's own model is untouched.
    assert isinstance(
        model.get_layer("backbone").get_layer("dw_bn"), keras.layers.BatchNormalization
    )
